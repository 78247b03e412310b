import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // integration suites share one machine's Redis, PostgreSQL and CPU: run files one at a time
    fileParallelism: false,
    reporters: ["default"]
  }
})
