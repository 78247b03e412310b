/**
 * P11: a client-credentials token request authenticated with `private_key_jwt` (ES256, a fresh assertion per
 * request) beside the same request with `client_secret_basic`, interleaved in pairs against the embedded provider;
 * ratio of median latencies (goal ≤ 1.2). Both go straight to `TokenEndpoint.request`: no cache in between.
 */
import { TokenClient, TokenEndpoint } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { median, now, type Row } from "./support.js"

const p11 = Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  const endpoint = yield* TokenEndpoint.make({ timeout: "10 seconds" })
  const basic = yield* TokenClient.decode({
    issuer: provider.issuer,
    clientId: IdentityProvider.Clients.machineBasic.clientId,
    clientSecret: Redacted.make(IdentityProvider.Clients.machineBasic.clientSecret)
  })
  const privateKeyJwt = yield* TokenClient.decode({
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
    id: "P11",
    what: "token request with private_key_jwt (ES256) (median latency)",
    value: `${(j * 1000).toFixed(0)} µs`,
    baseline: `${(b * 1000).toFixed(0)} µs client_secret_basic`,
    ratio: j / b,
    goal: "ratio ≤ 1.2",
    met: j / b <= 1.2,
    data: { privateKeyJwtMedianMs: j, clientSecretBasicMedianMs: b, samples: jwtTimes.length }
  } satisfies Row
})

export const run = Effect.all([p11])
