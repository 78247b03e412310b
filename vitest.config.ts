import * as Path from "node:path"
import { defineConfig } from "vitest/config"

const packages = Path.resolve(import.meta.dirname, "packages")

export default defineConfig({
  resolve: {
    // the workspace runs on sources, as the root tsconfig's `paths` do for tsc and tsx: no build before a test run
    alias: [
      { find: /^@effect-atm\/([a-z-]+)$/, replacement: `${packages}/$1/src/index.ts` },
      { find: /^@effect-atm\/([a-z-]+)\/(.+)$/, replacement: `${packages}/$1/src/$2.ts` }
    ]
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "examples/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // integration suites share one machine's Redis, PostgreSQL and CPU: run files one at a time
    fileParallelism: false,
    reporters: ["default"]
  }
})
