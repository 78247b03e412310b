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
 * With the embedded provider, WORKER_DEMO_AUTHENTICATION=private_key_jwt and WORKER_DEMO_DPOP=true switch it to a
 * signed client assertion and DPoP-bound tokens. `main.ts` runs it; the test runs `main` over `layer`.
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
export class DemoApiClient extends Context.Tag("worker/DemoApiClient")<
  DemoApiClient,
  AccessTokenHttpClient.ClientCredentialsHttpClient
>() {}

/** What the demo API saw in the token; `cnf.jkt` when it is DPoP-bound (the API then checked the call's proof). */
const Echo = Schema.Struct({
  client_id: Schema.String,
  scope: Schema.optional(Schema.String),
  jti: Schema.String,
  cnf: Schema.optional(Schema.Struct({ jkt: Schema.optional(Schema.String) }))
})

/** @internal the answers of the calls, for the summary */
export type Echo = typeof Echo.Type

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
    Layer.merge(Layer.succeed(
      TokenRequests,
      Effect.all({
        total: provider.tokenRequests({ grantType: "client_credentials" }),
        withClientAssertion: provider.tokenRequests({ grantType: "client_credentials", clientAssertion: true }),
        withDPoP: provider.tokenRequests({ grantType: "client_credentials", dpop: true })
      })
    ))
  )
})).pipe(Layer.provide(DemoApi.layer()), Layer.provide(IdentityProvider.layer({ accessTokenTtl: 5 })))

/** Real provider and API from the environment (WORKER_ISSUER or WORKER_TOKEN_ENDPOINT, WORKER_CLIENT_ID, …). */
const FromEnvironment = (apiUrl: string) =>
  AccessTokenHttpClient.layerClientCredentials(DemoApiClient, { client: "WORKER", baseUrl: apiUrl }).pipe(
    Layer.provideMerge(ClientCredentialsTokens.layerConfig(["WORKER"])),
    Layer.merge(Layer.succeed(TokenRequests, Effect.succeed(undefined)))
  )

/**
 * How many token requests reached the provider, and how many of them carried a client assertion and a DPoP proof
 * (known only for the embedded one).
 */
export class TokenRequests extends Context.Tag("worker/TokenRequests")<
  TokenRequests,
  Effect.Effect<
    { readonly total: number; readonly withClientAssertion: number; readonly withDPoP: number } | undefined
  >
>() {}

const describeRequests = (requests: TokenRequests["Type"] extends Effect.Effect<infer A> ? A : never) =>
  requests === undefined
    ? "n/a"
    : `${requests.total} (with a client assertion: ${requests.withClientAssertion}, with a DPoP proof: ` +
      `${requests.withDPoP})`

const callOnce = (n: number) =>
  Effect.gen(function*() {
    const client = yield* DemoApiClient
    const echo = yield* client.get("/data").pipe(
      Effect.flatMap(HttpClientResponse.filterStatusOk),
      Effect.flatMap(HttpClientResponse.schemaBodyJson(Echo)),
      Effect.scoped
    )
    const requested = yield* Effect.flatten(TokenRequests)
    const bound = echo.cnf?.jkt === undefined ? "" : `, DPoP-bound to ${echo.cnf.jkt.slice(0, 8)}…`
    yield* Effect.logInfo(
      `call ${n}: 200 OK as ${echo.client_id} (scope ${echo.scope ?? "-"}, jti ${echo.jti.slice(0, 8)}…${bound}); ` +
        `token requests so far: ${describeRequests(requested)}`
    )
    return echo
  })

/** Calls the API on the configured schedule; returns what the API saw in each call and the token requests. */
export const main = Effect.gen(function*() {
  const { calls, interval } = yield* settings
  const echoes: Array<Echo> = []
  const schedule = calls > 0
    ? Schedule.spaced(interval).pipe(Schedule.intersect(Schedule.recurs(calls - 1)), Schedule.asVoid)
    : Schedule.asVoid(Schedule.spaced(interval))
  yield* Effect.suspend(() => callOnce(echoes.length + 1)).pipe(
    Effect.tap((echo) => echoes.push(echo)),
    Effect.repeat(schedule)
  )
  const tokenRequests = yield* Effect.flatten(TokenRequests)
  yield* Effect.logInfo(`done: ${echoes.length} calls, token requests: ${describeRequests(tokenRequests)}`)
  return { echoes, tokenRequests }
})

/**
 * The worker's services: the embedded provider and API, or real ones when `API_URL` is set (see the module
 * comment), read from Effect `Config`.
 */
export const layer = Layer.unwrapEffect(
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
