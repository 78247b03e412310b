/**
 * A background worker that calls a protected API with its own client-credentials token, through a named HTTP
 * client. No HTTP request is at hand: the token is obtained, cached, renewed before expiry and attached for it.
 *
 * By default it starts an embedded OpenID Provider and demo API on 127.0.0.1, makes a bounded number of calls and
 * exits 0. Point it at real ones with the environment:
 *
 *   API_URL=https://api.example.com WORKER_ISSUER=https://login.example.com WORKER_CLIENT_ID=… \
 *   WORKER_CLIENT_SECRET=… WORKER_SCOPE=… npm run demo
 *
 * WORKER_CALLS (default 12; 0 = run until interrupted) and WORKER_INTERVAL (default "1 second") set the schedule.
 */
import {
  AccessTokenHttpClient,
  AccessTokenStore,
  ClientCredentialsTokens,
  TokenEndpoint,
  TokenLock
} from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"

/** The named client: the counterpart of .NET's `AddClientCredentialsTokenHttpClient("demoApi", …)`. */
class DemoApiClient extends Context.Tag("worker/DemoApiClient")<
  DemoApiClient,
  AccessTokenHttpClient.ClientCredentialsHttpClient
>() {}

const Echo = Schema.Struct({ client_id: Schema.String, scope: Schema.optional(Schema.String), jti: Schema.String })

const settings = Config.all({
  calls: Config.integer("WORKER_CALLS").pipe(Config.withDefault(12)),
  interval: Config.duration("WORKER_INTERVAL").pipe(Config.withDefault("1 second")),
  apiUrl: Config.option(Config.string("API_URL"))
})

/** Embedded provider and API, with 5-second tokens so that renewals happen while you watch. */
const Embedded = Layer.unwrapEffect(Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  const api = yield* DemoApi.DemoApi
  yield* Effect.logInfo(`Embedded OpenID Provider at ${provider.issuer}, demo API at ${api.url}`)
  // WORKER_DEMO_AUTHENTICATION=private_key_jwt: the embedded provider's private_key_jwt client, signing with its key
  const authentication = yield* Config.literal("client_secret_basic", "private_key_jwt")("WORKER_DEMO_AUTHENTICATION")
    .pipe(Config.withDefault("client_secret_basic" as const))
  // WORKER_DEMO_DPOP=true: DPoP-bound tokens, a proof on every request (the secret client is then the provider's
  // machine-dpop client, which refuses tokens without a proof)
  const dpop = yield* Config.boolean("WORKER_DEMO_DPOP").pipe(Config.withDefault(false))
  const secretClient = dpop ? IdentityProvider.Clients.machineDpop : IdentityProvider.Clients.machineBasic
  const tokens = ClientCredentialsTokens.layer({
    clients: {
      worker: authentication === "private_key_jwt"
        ? {
          issuer: provider.issuer,
          clientId: IdentityProvider.Clients.machinePrivateKeyJwt.clientId,
          authentication: "private_key_jwt",
          privateKey: Redacted.make(provider.clientPrivateKeys.pem),
          scope: "api.read",
          dpop
        }
        : {
          issuer: provider.issuer,
          clientId: secretClient.clientId,
          clientSecret: Redacted.make(secretClient.clientSecret),
          scope: "api.read",
          dpop
        }
    }
  })
  return AccessTokenHttpClient.layerClientCredentials(DemoApiClient, { client: "worker", baseUrl: api.url }).pipe(
    Layer.provideMerge(tokens),
    Layer.merge(Layer.succeed(TokenRequests, provider.tokenRequests({ grantType: "client_credentials" })))
  )
})).pipe(Layer.provide(DemoApi.layer()), Layer.provide(IdentityProvider.layer({ accessTokenTtl: 5 })))

/** Real provider and API from the environment (WORKER_ISSUER or WORKER_TOKEN_ENDPOINT, WORKER_CLIENT_ID, …). */
const FromEnvironment = (apiUrl: string) =>
  AccessTokenHttpClient.layerClientCredentials(DemoApiClient, { client: "WORKER", baseUrl: apiUrl }).pipe(
    Layer.provideMerge(ClientCredentialsTokens.layerConfig(["WORKER"])),
    Layer.merge(Layer.succeed(TokenRequests, Effect.succeed(Number.NaN)))
  )

/** How many token requests reached the provider (known only for the embedded one). */
class TokenRequests extends Context.Tag("worker/TokenRequests")<TokenRequests, Effect.Effect<number>>() {}

const callOnce = (n: number) =>
  Effect.gen(function*() {
    const client = yield* DemoApiClient
    const echo = yield* client.get("/data").pipe(
      Effect.flatMap(HttpClientResponse.filterStatusOk),
      Effect.flatMap(HttpClientResponse.schemaBodyJson(Echo)),
      Effect.scoped
    )
    const requested = yield* Effect.flatten(TokenRequests)
    yield* Effect.logInfo(
      `call ${n}: 200 OK as ${echo.client_id} (scope ${echo.scope ?? "-"}, jti ${echo.jti.slice(0, 8)}…); ` +
        `token requests so far: ${Number.isNaN(requested) ? "n/a" : requested}`
    )
  })

const main = Effect.gen(function*() {
  const { calls, interval } = yield* settings
  let n = 0
  const schedule = calls > 0
    ? Schedule.spaced(interval).pipe(Schedule.intersect(Schedule.recurs(calls - 1)), Schedule.asVoid)
    : Schedule.asVoid(Schedule.spaced(interval))
  yield* Effect.suspend(() => callOnce(++n)).pipe(Effect.repeat(schedule))
  yield* Effect.logInfo(`done: ${n} calls, ${yield* Effect.flatten(TokenRequests)} token requests`)
})

const Live = Layer.unwrapEffect(
  Effect.map(
    settings,
    ({ apiUrl }) => Option.isSome(apiUrl) ? Layer.orDie(FromEnvironment(apiUrl.value)) : Layer.orDie(Embedded)
  )
).pipe(
  Layer.provide([
    // the token endpoint speaks to the provider through the application's HttpClient
    Layer.provideMerge(TokenEndpoint.layerDefault, NodeHttpClient.layerUndici),
    // one process: tokens in memory, renewals exclusive within the process (a cluster would share a Redis store
    // and a RedisTokenLock instead)
    AccessTokenStore.layerMemory(),
    TokenLock.layerMemory
  ])
)

main.pipe(Effect.provide(Live), NodeRuntime.runMain)
