/**
 * P11: a client-credentials token request authenticated with `private_key_jwt` (ES256, a fresh assertion per
 * request) beside the same request with `client_secret_basic`, interleaved in pairs against the embedded provider;
 * ratio of median latencies (goal ≤ 1.2). Both go straight to `TokenEndpoint.request`: no cache in between.
 * P11b: the same pair against a loopback stub that answers at once without checking anything: what the library
 * adds on its side (making and signing the assertion), apart from the provider verifying it.
 */
import { TokenClient, TokenEndpoint } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Http from "node:http"
import { median, now, type Row } from "./support.js"

const pair = (options: { readonly id: string; readonly what: string; readonly stub: boolean }) =>
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
      privateKey: Redacted.make(provider.clientPrivateKeys.pem)
    })
    const grant = TokenEndpoint.Grant.ClientCredentials({ options: { scope: "api.read" } })
    const one = (client: TokenClient.TokenClient) =>
      Effect.gen(function*() {
        const start = now()
        yield* endpoint.request(client, grant)
        return now() - start
      })
    for (let i = 0; i < 100; i++) {
      yield* one(basic)
      yield* one(privateKeyJwt)
    }
    const jwtTimes: Array<number> = []
    const basicTimes: Array<number> = []
    for (let pair = 0; pair < 1000; pair++) {
      if (pair % 2 === 0) {
        jwtTimes.push(yield* one(privateKeyJwt))
        basicTimes.push(yield* one(basic))
      } else {
        basicTimes.push(yield* one(basic))
        jwtTimes.push(yield* one(privateKeyJwt))
      }
    }
    const j = median(jwtTimes)
    const b = median(basicTimes)
    return {
      id: options.id,
      what: options.what,
      value: `${(j * 1000).toFixed(0)} µs`,
      baseline: `${(b * 1000).toFixed(0)} µs client_secret_basic`,
      ratio: j / b,
      ...(options.stub ? {} : { goal: "ratio ≤ 1.2", met: j / b <= 1.2 }),
      data: { privateKeyJwtMedianMs: j, clientSecretBasicMedianMs: b, samples: jwtTimes.length }
    } satisfies Row
  })

/** A token endpoint on 127.0.0.1 that answers every request at once with a fixed token, checking nothing. */
const stubEndpoint = Effect.acquireRelease(
  Effect.async<Http.Server>((resume) => {
    const body = JSON.stringify({ access_token: "stub", token_type: "Bearer", expires_in: 300 })
    const server = Http.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" })
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

export const run = Effect.all([
  pair({ id: "P11", what: "token request with private_key_jwt (ES256) (median latency)", stub: false }),
  pair({ id: "P11b", what: "the same against a stub endpoint that checks nothing (library side)", stub: true })
]).pipe(Effect.scoped)
