/**
 * P10: DPoP. A loopback GET to the demo API with a DPoP-bound token through the token-attaching client (a new proof
 * per request, signed by the client and verified by the API: signature, htm/htu, ath, jti replay, cnf.jkt), beside
 * the same GET with a bearer token through the same middleware, interleaved in pairs in one run; ratio of median
 * latencies (goal ≤ 1.15). Client and API share this process (and its CPU): the row includes the API's ECDSA
 * verification as well as the client's signature.
 *
 * P10p: P10 with the demo API in a child process (both clients call it): as an API is deployed, its verification
 * runs on its own CPU rather than the client's, and every request of both sides crosses processes.
 *
 * P10s: what one proof costs (ES256 signature, jti, encoding), in the same run: the floor of the difference above.
 *
 * P10c: the client's share alone: the same two clients against a loopback server that answers 200 without looking at
 * the request, so that the difference is what the library does per request (proof, ath, headers).
 */
import { AccessTokenHttpClient, AccessTokenManagement, ClientCredentialsTokens, DPoP } from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { fork } from "node:child_process"
import * as Http from "node:http"
import { fileURLToPath } from "node:url"
import { interleavedPairs, median, now, percentile, type Row, timedGet } from "./support.js"

const { machineBasic, machineDpop } = IdentityProvider.Clients

const tokensLayer = Layer.unwrapEffect(
  Effect.map(IdentityProvider.IdentityProvider, (provider) =>
    AccessTokenManagement.layerClientCredentialsMemory({
      clients: {
        dpop: {
          issuer: provider.issuer,
          clientId: machineDpop.clientId,
          clientSecret: Redacted.make(machineDpop.clientSecret),
          scope: "api.read",
          dpop: true
        },
        bearer: {
          issuer: provider.issuer,
          clientId: machineBasic.clientId,
          clientSecret: Redacted.make(machineBasic.clientSecret),
          scope: "api.read"
        }
      }
    }))
).pipe(Layer.orDie)

/** A loopback server that answers every request 200 with a small JSON body, as fast as Node answers. */
const echoServer = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly server: Http.Server }>((resume) => {
    const body = JSON.stringify({ ok: true })
    const server = Http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
      res.end(body)
    })
    server.listen(
      0,
      "127.0.0.1",
      () => resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server }))
    )
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
      server.closeAllConnections()
    })
)

/** The demo API in a child process (`dpopApi.worker.ts`) for the embedded provider, killed with the scope. */
const apiProcess = Effect.flatMap(IdentityProvider.IdentityProvider, (provider) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly kill: () => void }, Error>((resume) => {
      const child = fork(fileURLToPath(new URL("./dpopApi.worker.ts", import.meta.url)), [], {
        execArgv: ["--import", "tsx"],
        env: { ...process.env, ISSUER: provider.issuer, JWKS_URI: provider.jwksUri },
        stdio: ["ignore", "inherit", "inherit", "ipc"]
      })
      const kill = () => child.kill("SIGKILL")
      const timer = setTimeout(kill, 60_000)
      const exited = (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(timer)
        resume(Effect.fail(new Error(`the demo API process exited (${signal ?? code}) before listening`)))
      }
      child.once("message", (message) => {
        clearTimeout(timer)
        child.off("exit", exited)
        resume(Effect.succeed({ url: (message as { url: string }).url, kill }))
      })
      child.once("exit", exited)
      return Effect.sync(kill)
    }),
    ({ kill }) => Effect.sync(kill)
  ))

const compare = (baseUrl: string) =>
  Effect.gen(function*() {
    const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
    const http = yield* HttpClient.HttpClient
    const client = (name: string) =>
      AccessTokenHttpClient.withAccessToken(http, AccessTokenHttpClient.clientCredentialsSource(tokens, name))
    const dpop = client("dpop")
    const bearer = client("bearer")
    const dpopToken = yield* tokens.get("dpop")
    if (dpopToken.tokenType !== "DPoP") return yield* Effect.dieMessage("the dpop client did not get a DPoP token")
    const url = `${baseUrl}/data`
    // the warm-up also fills the API's key caches
    const [dpopTimes, bearerTimes] = yield* interleavedPairs(timedGet(dpop, url), timedGet(bearer, url), {
      warmup: 300,
      pairs: 4000
    })
    const d = median(dpopTimes)
    const b = median(bearerTimes)
    return {
      value: `${(d * 1000).toFixed(0)} µs`,
      baseline: `${(b * 1000).toFixed(0)} µs bearer token`,
      ratio: d / b,
      data: {
        dpopMedianMs: d,
        bearerMedianMs: b,
        dpopP90Ms: percentile(dpopTimes, 90),
        bearerP90Ms: percentile(bearerTimes, 90),
        samples: dpopTimes.length
      }
    }
  })

export const run = Effect.gen(function*() {
  const api = yield* DemoApi.DemoApi
  const endToEnd = yield* compare(api.url)
  const separate = yield* compare((yield* apiProcess).url)
  const echo = yield* echoServer
  const clientOnly = yield* compare(echo.url)
  const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
  const token = yield* tokens.get("dpop")
  const proof = DPoP.proof(token.dpopKey!, { method: "GET", url: `${api.url}/data`, token })
  for (let i = 0; i < 1000; i++) yield* proof
  const proofs = 5000
  const start = now()
  for (let i = 0; i < proofs; i++) yield* proof
  const proofMicros = ((now() - start) * 1000) / proofs
  return [
    {
      id: "P10",
      what: "GET to the demo API with a DPoP-bound token, a proof per request, verified (median)",
      ...endToEnd,
      goal: "ratio ≤ 1.15",
      met: endToEnd.ratio <= 1.15
    },
    {
      id: "P10p",
      what: "the same GET to the demo API in a child process, verified there (median)",
      ...separate,
      goal: "ratio ≤ 1.15",
      met: separate.ratio <= 1.15
    },
    {
      id: "P10c",
      what: "the same GET to a server that does not verify: the client's share (median)",
      ...clientOnly,
      goal: "ratio ≤ 1.15",
      met: clientOnly.ratio <= 1.15
    },
    {
      id: "P10s",
      what: "one DPoP proof made (ES256), mean",
      value: `${proofMicros.toFixed(0)} µs`,
      data: { proofMicros, proofs }
    }
  ] satisfies ReadonlyArray<Row>
}).pipe(Effect.scoped, Effect.provide(tokensLayer))
