import { IdentityProvider } from "@effect-atm/dev-identity"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"
import { unusedPort } from "../../../test/support/environment.js"
import { assertNoSecrets } from "../../../test/support/redaction.js"

const root = Path.resolve(import.meta.dirname, "../../..")

/** `npm run telemetry`, as a process of its own, stopped (SIGTERM) when the test's scope closes. */
const startExample = (port: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(Path.join(root, "node_modules/.bin/tsx"), ["examples/telemetry/src/main.ts"], {
        cwd: root,
        env: { ...process.env, METRICS_PORT: String(port), WORKER_INTERVAL: "200 millis" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const output: Array<string> = []
      child.stdout!.on("data", (chunk: Buffer) => output.push(chunk.toString("utf8")))
      child.stderr!.on("data", (chunk: Buffer) => output.push(chunk.toString("utf8")))
      return { child, output }
    }),
    ({ child }) => stop(child)
  )

const stop = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGTERM")
  })

/** The sum of the samples of `name` (exactly) that carry every label of `labels`, in Prometheus text format. */
const sample = (text: string, name: string, labels: Record<string, string>): number =>
  text.split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)

const worker = { grant: "client_credentials", client: "worker" }

describe("examples/telemetry", () => {
  it.scopedLive("serves the token metrics on /metrics and prints spans without secrets", () =>
    Effect.gen(function*() {
      const port = yield* unusedPort
      const { child, output } = yield* startExample(port)

      // scrape until the worker has done its burst and a 401 retry (the process takes a while to start)
      const metrics = yield* Effect.tryPromise(async () => {
        const response = await fetch(`http://127.0.0.1:${port}/metrics`)
        return response.text()
      }).pipe(
        // the renewal after the 401 is over once its duration is recorded
        Effect.filterOrFail((text) =>
          sample(text, "atm_unauthorized_retries_total", {}) >= 1 &&
          sample(text, "atm_renewal_duration_seconds_count", worker) >= 2
        ),
        Effect.retry({
          schedule: Schedule.spaced("250 millis"),
          // the process exits only when it failed: stop waiting then
          while: () => child.exitCode === null
        }),
        Effect.timeoutFail({
          duration: "90 seconds",
          onTimeout: () => new Error(`no 401 retry in the metrics; output:\n${output.join("")}`)
        })
      )

      assert.isAtLeast(sample(metrics, "atm_token_requests_total", { ...worker, outcome: "success" }), 2)
      assert.strictEqual(sample(metrics, "atm_token_requests_total", { ...worker, outcome: "rejected" }), 0)
      // the cold burst of 20 concurrent calls started one renewal; the others joined it (or came after it)
      assert.isAtLeast(sample(metrics, "atm_cache_lookups_total", { ...worker, result: "miss" }), 1)
      assert.isAtLeast(
        sample(metrics, "atm_cache_lookups_total", { ...worker, result: "join" }) +
          sample(metrics, "atm_cache_lookups_total", { ...worker, result: "hit" }),
        19
      )
      assert.isAtLeast(sample(metrics, "atm_renewal_duration_seconds_count", worker), 2)
      assert.isAtLeast(sample(metrics, "atm_lock_wait_seconds_count", worker), 2)
      assert.isAtLeast(
        sample(metrics, "atm_store_operation_duration_seconds_count", { store: "access_token", operation: "set" }),
        2
      )
      assert.isAtLeast(sample(metrics, "atm_unauthorized_retries_total", { http_client: "example/DemoApiClient" }), 1)
      assert.include(metrics, "# TYPE atm_renewals_in_flight gauge")

      // spans are printed in batches: wait for the renewal spans
      yield* Effect.sync(() => output.join("")).pipe(
        Effect.filterOrFail((text) => text.includes("span AccessTokenHttpClient.retryUnauthorized")),
        Effect.retry(Schedule.spaced("250 millis")),
        Effect.timeout("30 seconds")
      )
      const printed = output.join("")
      assert.include(printed, "span ClientCredentialsTokens.renew")
      assert.include(printed, "span TokenEndpoint.request")
      const { clientId, clientSecret } = IdentityProvider.Clients.machineBasic
      assertNoSecrets([printed, metrics], [clientSecret, Buffer.from(`${clientId}:${clientSecret}`).toString("base64")])
    }), { timeout: 150_000 })
})
