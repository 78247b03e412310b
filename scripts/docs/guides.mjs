// Type-checks the code of the guides in docs/*.md against the workspace sources, as docgen does for @example:
// every ```ts block is a module of its own and must compile. A block that shows a fragment (no imports, names
// from the text around it) is fenced ```ts fragment and left out.
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "../..")
const out = Path.join(root, "node_modules/.cache/effect-atm-guides")
Fs.rmSync(out, { recursive: true, force: true })
Fs.mkdirSync(out, { recursive: true })

const guides = Fs.readdirSync(Path.join(root, "docs")).filter((name) => name.endsWith(".md")).sort()
const sources = new Map() // generated file -> [guide, line of the block's first code line]
for (const guide of guides) {
  const lines = Fs.readFileSync(Path.join(root, "docs", guide), "utf8").split("\n")
  let block
  lines.forEach((line, i) => {
    if (block === undefined) {
      if (/^```ts\s*$/.test(line)) block = { start: i + 2, code: [] }
    } else if (line.startsWith("```")) {
      const file = `${Path.basename(guide, ".md")}-${block.start}.ts`
      Fs.writeFileSync(Path.join(out, file), block.code.join("\n") + "\n")
      sources.set(file, [guide, block.start])
      block = undefined
    } else {
      block.code.push(line)
    }
  })
}

const packages = Fs.readdirSync(Path.join(root, "packages"))
  .filter((name) => Fs.existsSync(Path.join(root, "packages", name, "src/index.ts")))
const paths = Object.fromEntries(packages.flatMap((name) => [
  [`@effect-atm/${name}`, [Path.join(root, "packages", name, "src/index.ts")]],
  [`@effect-atm/${name}/*`, [Path.join(root, "packages", name, "src/*.ts")]]
]))
const docgen = JSON.parse(Fs.readFileSync(Path.join(root, "packages/core/docgen.json"), "utf8"))
Fs.writeFileSync(
  Path.join(out, "tsconfig.json"),
  JSON.stringify({ compilerOptions: { ...docgen.examplesCompilerOptions, paths }, include: ["*.ts"] }, null, 2)
)

try {
  execFileSync(Path.join(root, "node_modules/.bin/tsc"), ["--noEmit", "-p", out], { encoding: "utf8" })
  console.log(`docs/*.md: ${sources.size} code blocks type-check`)
} catch (error) {
  // name the guide and its line rather than the generated file
  const report = String(error.stdout).replace(/^(\S+?\.ts)\((\d+),(\d+)\)/gm, (match, file, line, column) => {
    const source = sources.get(Path.basename(file))
    return source === undefined ? match : `docs/${source[0]}:${source[1] + Number(line) - 1}:${column}`
  })
  console.error(`The code of the guides does not type-check:\n${report}`)
  process.exit(1)
}
