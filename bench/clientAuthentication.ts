/**
 * P11: a client-credentials token request authenticated with `private_key_jwt` (ES256, a fresh assertion per
 * request) beside the same request with `client_secret_basic`, interleaved in pairs against the embedded provider;
 * ratio of median latencies (goal ≤ 1.2). Both go straight to `TokenEndpoint.request`: no cache in between.
 * Each row has an `-EdDSA` twin, run next to it: the same with an Ed25519 key (RFC 8037, which FAPI 2.0 allows
 * beside ES256 and PS256).
 * P11b: the same pair against a loopback stub that answers at once without checking anything: what the library
 * adds on its side (making and signing the assertion), apart from the provider verifying it.
 * P11c: the provider's side alone: the same two requests to the embedded provider as bare form POSTs, the
 * assertions signed beforehand (outside the timing), so the ratio is what the provider spends verifying the
 * assertion and recording its `jti` for replay — the floor of P11 whatever the client does.
 */
import { TokenClient, TokenEndpoint } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import { interleavedPairs, median, now, type Row } from "./support.js"

/**
 * Times `effect` (wall ms) and adds the process's CPU time it took (µs, every thread: the provider, the stub and
 * WebCrypto's thread pool run in this process too) to `cpu`: CPU time is far less sensitive to the machine's load
 * than latency, which makes it the better figure for the split between the client and the provider.
 */
const timed = <E, R>(effect: Effect.Effect<unknown, E, R>, cpu: Array<number>) =>
  Effect.suspend(() => {
    const start = now()
    const startCpu = process.cpuUsage()
    return Effect.map(effect, () => {
      const used = process.cpuUsage(startCpu)
      cpu.push(used.user + used.system)
      return now() - start
    })
  })

const row = (
  options: { readonly id: string; readonly what: string; readonly goal: boolean },
  [jwtTimes, basicTimes]: readonly [ReadonlyArray<number>, ReadonlyArray<number>],
  jwtCpu: ReadonlyArray<number>,
  basicCpu: ReadonlyArray<number>
): Row => {
  const j = median(jwtTimes)
  const b = median(basicTimes)
  const cpu = (values: ReadonlyArray<number>) => median(values.slice(-jwtTimes.length))
  return {
    id: options.id,
    what: options.what,
    value: `${(j * 1000).toFixed(0)} µs`,
    baseline: `${(b * 1000).toFixed(0)} µs client_secret_basic`,
    ratio: j / b,
    ...(options.goal ? { goal: "ratio ≤ 1.2", met: j / b <= 1.2 } : {}),
    data: {
      privateKeyJwtMedianMs: j,
      clientSecretBasicMedianMs: b,
      privateKeyJwtMedianCpuMicros: cpu(jwtCpu),
      clientSecretBasicMedianCpuMicros: cpu(basicCpu),
      samples: jwtTimes.length
    }
  }
}

/** The client's key of each algorithm, from the keys the provider registered for `machinePrivateKeyJwt`. */
const privateKeyPem = (provider: IdentityProvider.IdentityProvider["Type"], alg: "ES256" | "EdDSA") =>
  alg === "ES256" ? provider.clientPrivateKeys.pem : provider.clientPrivateKeys.ed25519.pem

const pair = (
  options: { readonly id: string; readonly what: string; readonly stub: boolean; readonly alg: "ES256" | "EdDSA" }
) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const endpoint = yield* TokenEndpoint.make({ timeout: "10 seconds" })
    const tokenEndpoint = options.stub ? yield* stubEndpoint : undefined
    const where = tokenEndpoint === undefined ? {} : { tokenEndpoint }
    const basic = yield* TokenClient.decode({
      ...where,
      issuer: provider.issuer,
      clientId: IdentityProvider.Clients.machineBasic.clientId,
      clientSecret: Redacted.make(IdentityProvider.Clients.machineBasic.clientSecret)
    })
    const privateKeyJwt = yield* TokenClient.decode({
      ...where,
      issuer: provider.issuer,
      clientId: IdentityProvider.Clients.machinePrivateKeyJwt.clientId,
      authentication: "private_key_jwt",
      privateKey: Redacted.make(privateKeyPem(provider, options.alg))
    })
    const grant = TokenEndpoint.Grant.ClientCredentials({ options: { scope: "api.read" } })
    const jwtCpu: Array<number> = []
    const basicCpu: Array<number> = []
    const times = yield* interleavedPairs(
      timed(endpoint.request(privateKeyJwt, grant), jwtCpu),
      timed(endpoint.request(basic, grant), basicCpu),
      { warmup: 100, pairs: 1000 }
    )
    return row({ ...options, goal: !options.stub }, times, jwtCpu, basicCpu)
  })

/** A token endpoint on 127.0.0.1 that answers every request at once with a fixed token, checking nothing. */
const stubEndpoint = Effect.acquireRelease(
  Effect.async<Http.Server>((resume) => {
    const body = JSON.stringify({ access_token: "stub", token_type: "Bearer", expires_in: 300 })
    const server = Http.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        // with its length, as providers answer (oidc-provider does): the library reads such a body whole
        res.writeHead(200, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          "cache-control": "no-store"
        })
        res.end(body)
      })
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as { port: number }).port}/token`))

/** P11c: bare client-credentials POSTs to the provider, `client_secret_basic` vs an assertion signed beforehand. */
const providerSide = (options: { readonly id: string; readonly what: string; readonly alg: "ES256" | "EdDSA" }) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const http = yield* HttpClient.HttpClient
    const warmup = 100
    const pairs = 1000
    const key = Crypto.createPrivateKey(privateKeyPem(provider, options.alg))
    const clientId = IdentityProvider.Clients.machinePrivateKeyJwt.clientId
    const header = Buffer.from(JSON.stringify({ alg: options.alg })).toString("base64url")
    // one assertion per request (the provider refuses a replayed jti), all signed before the timing starts
    const assertions = Array.from({ length: warmup + pairs }, () => {
      const iat = Math.floor(Date.now() / 1000)
      const payload = Buffer.from(JSON.stringify({
        jti: Crypto.randomUUID(),
        aud: provider.issuer,
        exp: iat + 300,
        iat,
        iss: clientId,
        sub: clientId
      })).toString("base64url")
      const input = Buffer.from(`${header}.${payload}`)
      const signature = options.alg === "ES256"
        ? Crypto.sign("sha256", input, { key, dsaEncoding: "ieee-p1363" })
        : Crypto.sign(null, input, key)
      return `${header}.${payload}.${signature.toString("base64url")}`
    })
    const basicCredentials = Buffer.from(
      `${IdentityProvider.Clients.machineBasic.clientId}:${IdentityProvider.Clients.machineBasic.clientSecret}`
    ).toString("base64")
    const post = (request: HttpClientRequest.HttpClientRequest, cpu: Array<number>) =>
      timed(
        Effect.gen(function*() {
          const response = yield* http.execute(request)
          yield* response.arrayBuffer
          if (response.status !== 200) return yield* Effect.dieMessage(`status ${response.status}`)
        }).pipe(Effect.scoped),
        cpu
      )
    const form = { grant_type: "client_credentials", scope: "api.read" }
    let next = 0
    const jwtCpu: Array<number> = []
    const basicCpu: Array<number> = []
    const times = yield* interleavedPairs(
      Effect.suspend(() =>
        post(
          HttpClientRequest.post(provider.tokenEndpoint).pipe(HttpClientRequest.bodyUrlParams({
            ...form,
            client_id: clientId,
            client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            client_assertion: assertions[next++]!
          })),
          jwtCpu
        )
      ),
      post(
        HttpClientRequest.post(provider.tokenEndpoint).pipe(
          HttpClientRequest.setHeader("authorization", `Basic ${basicCredentials}`),
          HttpClientRequest.bodyUrlParams(form)
        ),
        basicCpu
      ),
      { warmup, pairs }
    )
    return row({ ...options, goal: false }, times, jwtCpu, basicCpu)
  })

export const run = Effect.all([
  pair({ id: "P11", what: "token request with private_key_jwt (ES256) (median latency)", stub: false, alg: "ES256" }),
  pair({ id: "P11-EdDSA", what: "the same with an Ed25519 key (EdDSA)", stub: false, alg: "EdDSA" }),
  pair({
    id: "P11b",
    what: "the same against a stub endpoint that checks nothing (library side)",
    stub: true,
    alg: "ES256"
  }),
  pair({ id: "P11b-EdDSA", what: "the same with an Ed25519 key (EdDSA)", stub: true, alg: "EdDSA" }),
  providerSide({
    id: "P11c",
    what: "provider side: bare POSTs, the assertion signed beforehand (median latency)",
    alg: "ES256"
  }),
  providerSide({ id: "P11c-EdDSA", what: "the same with an Ed25519 key (EdDSA)", alg: "EdDSA" })
]).pipe(Effect.scoped)
