/**
 * `npm run bench`: runs every benchmark against the embedded provider on 127.0.0.1, prints a table and writes
 * bench/results/latest.json. Each figure is compared with its baseline in the same run (ratios), since the machine
 * is shared and noisy.
 */
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { mkdirSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as clientAuthentication from "./clientAuthentication.js"
import * as clientCredentials from "./clientCredentials.js"
import * as cluster from "./cluster.js"
import * as dpop from "./dpop.js"
import * as outage from "./outage.js"
import * as realtime from "./realtime.js"
import * as stores from "./stores.js"
import { printTable, type Row } from "./support.js"
import * as telemetry from "./telemetry.js"
import * as userTokens from "./userTokens.js"

const suites: Record<
  string,
  Effect.Effect<
    ReadonlyArray<Row>,
    unknown,
    IdentityProvider.IdentityProvider | DemoApi.DemoApi | HttpClient.HttpClient
  >
> = {
  clientCredentials: clientCredentials.run,
  telemetry: telemetry.run,
  userTokens: userTokens.run,
  stores: stores.run,
  outage: outage.run,
  cluster: cluster.run,
  clientAuthentication: clientAuthentication.run,
  dpop: dpop.run
}

/**
 * Run only when named (`npm run bench realtime`): P14 holds 500 websockets on the shared machine for a minute and
 * more, which the default run should not impose on whoever else is measuring. `p3` is P3 alone, `p1` P1 and P1aa
 * alone, both also part of `clientCredentials`.
 */
const onDemand: typeof suites = {
  realtime: realtime.run,
  p3: clientCredentials.runP3,
  p1: clientCredentials.runP1
}

const only = process.argv.slice(2)

const main = Effect.gen(function*() {
  const rows: Array<Row> = []
  for (const [name, suite] of [...Object.entries(suites), ...Object.entries(onDemand)]) {
    if (only.length > 0 ? !only.includes(name) : name in onDemand) continue
    console.error(`running ${name}…`)
    rows.push(...(yield* suite))
  }
  console.log()
  printTable(rows)
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    rows
  }
  mkdirSync("bench/results", { recursive: true })
  writeFileSync("bench/results/latest.json", JSON.stringify(result, null, 2))
  console.log("\nwritten: bench/results/latest.json")
})

const Environment = DemoApi.layer().pipe(
  Layer.provideMerge(IdentityProvider.layer({ accessTokenTtl: 300 })),
  Layer.provideMerge(NodeHttpClient.layerUndici)
)

main.pipe(Effect.provide(Environment), NodeRuntime.runMain)
