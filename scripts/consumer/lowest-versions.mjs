// Prints, one `name@version` a line, the lowest versions our packages' peer ranges allow, and the lowest versions of
// the Effect packages those need in turn (their dependencies and required peers, transitively), checking with
// `npm view` that each exists and that the set is consistent. Fails, naming the conflict, when the floors of our
// ranges cannot be installed together: then our floors must be raised.
//
//   node scripts/consumer/lowest-versions.mjs [--skip <peer>]...
//
// Without the transitive Effect packages, npm would pick their newest versions, which may need more than our
// floors (e.g. @effect/platform-node@0.108.0 → @effect/cluster@0.60.2 needs effect ^3.22.1).
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "../..")
const args = process.argv.slice(2)
const skip = new Set(args.flatMap((arg, i) => args[i - 1] === "--skip" ? [arg] : []))

const parse = (version) => version.split(".").map(Number)

/** The lowest version of `^x.y.z` or `x.y.z`; other range forms are not used in this project. */
const floor = (range) => {
  const match = /^\^?(\d+\.\d+\.\d+)$/.exec(range.trim())
  if (match === null) throw new Error(`cannot take the lowest version of the range "${range}"`)
  return match[1]
}

const satisfies = (version, range) => {
  const [major, minor, patch] = parse(version)
  const [lowMajor, lowMinor, lowPatch] = parse(floor(range))
  if (!range.trim().startsWith("^")) return major === lowMajor && minor === lowMinor && patch === lowPatch
  const atLeast = major !== lowMajor ? major > lowMajor : minor !== lowMinor ? minor > lowMinor : patch >= lowPatch
  return atLeast && major === lowMajor && (lowMajor > 0 || minor === lowMinor)
}

const isEffect = (name) => name === "effect" || name.startsWith("@effect/")

/** name -> { version, from } */
const chosen = new Map()
const choose = (name, range, from) => {
  const version = floor(range)
  const current = chosen.get(name)
  if (current === undefined) {
    chosen.set(name, { version, from })
    return true
  }
  if (!satisfies(current.version, range)) {
    throw new Error(
      `${from} needs ${name}@${range}, but ${current.from} allows ${name}@${current.version}: ` +
        `the lowest versions cannot be installed together; raise the floor of ${name}`
    )
  }
  return false
}

for (const dir of Fs.readdirSync(Path.join(root, "packages")).sort()) {
  const manifest = JSON.parse(Fs.readFileSync(Path.join(root, "packages", dir, "package.json"), "utf8"))
  for (const [name, range] of Object.entries(manifest.peerDependencies ?? {})) {
    if (name.startsWith("@effect-atm/") || skip.has(name)) continue
    const version = floor(range)
    const current = chosen.get(name)
    if (current !== undefined && current.version !== version) {
      throw new Error(`${manifest.name} has ${name}@${range}, ${current.from} has ${current.version}: align the floors`)
    }
    chosen.set(name, { version, from: manifest.name })
  }
}

const view = (name, version) =>
  new Promise((resolve, reject) =>
    execFile(
      "npm",
      [
        "view",
        `${name}@${version}`,
        "version",
        "dependencies",
        "peerDependencies",
        "peerDependenciesMeta",
        "--json",
        "--prefer-offline"
      ],
      (error, stdout) => {
        const manifest = error === null && stdout.trim() !== "" ? JSON.parse(stdout) : undefined
        if (manifest?.version === version) return resolve(manifest)
        const reason = error === null ? "no such version" : error.message.split("\n")[0]
        reject(new Error(`${name}@${version} does not exist on the registry (${reason})`))
      }
    )
  )

// breadth first, one wave of `npm view` at a time (each takes a second or two)
let wave = [...chosen.keys()]
while (wave.length > 0) {
  const manifests = await Promise.all(wave.map((name) => view(name, chosen.get(name).version)))
  const next = []
  wave.forEach((name, i) => {
    if (!isEffect(name)) return
    const optional = manifests[i].peerDependenciesMeta ?? {}
    const needs = [
      ...Object.entries(manifests[i].dependencies ?? {}),
      ...Object.entries(manifests[i].peerDependencies ?? {}).filter(([peer]) => optional[peer]?.optional !== true)
    ]
    for (const [dependency, range] of needs) {
      if (isEffect(dependency) && choose(dependency, range, `${name}@${chosen.get(name).version}`)) {
        next.push(dependency)
      }
    }
  })
  wave = next
}

for (const [name, { version, from }] of chosen) {
  console.error(
    `  ${`${name}@${version}`.padEnd(36)} (${from.startsWith("@effect-atm/") ? "our floor" : `for ${from}`})`
  )
  console.log(`${name}@${version}`)
}
