import {
  AccessTokenHttpClient,
  CurrentUser,
  TokenClient,
  TokenEndpoint,
  TokenExchange,
  UserTokens
} from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import { assert, describe, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { claims, identity, userTokens } from "../../../test/support/environment.js"
import { signIn } from "../../../test/support/login.js"
import { assertNoSecrets, renderings } from "../../../test/support/redaction.js"

const { demoApi, otherApi } = IdentityProvider.Resources
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

const value = (token: { readonly accessToken: Redacted.Redacted<string> }) => Redacted.value(token.accessToken)

class BillingApi extends Context.Tag("test/TokenExchange/BillingApi")<
  BillingApi,
  AccessTokenHttpClient.TokenExchangeHttpClient
>() {}

const webClient = (provider: IdentityProvider.IdentityProvider["Type"]) => ({
  issuer: provider.issuer,
  clientId: IdentityProvider.Clients.web.clientId,
  clientSecret: Redacted.make(IdentityProvider.Clients.web.clientSecret)
})

/** User tokens (the subject tokens) and the exchange, with a named client for the demo API on top. */
const environment = Layer.unwrapEffect(
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const api = yield* DemoApi.DemoApi
    return AccessTokenHttpClient.layerTokenExchange(BillingApi, { target: "demo", baseUrl: api.url }).pipe(
      Layer.provideMerge(TokenExchange.layerMemory({
        client: webClient(provider),
        targets: {
          other: { resource: otherApi, scope: "other.read" },
          demo: { resource: demoApi, scope: "api.read" }
        }
      }))
    )
  })
).pipe(Layer.provideMerge(userTokens()), Layer.orDie)

const exchanges = Effect.flatMap(
  IdentityProvider.IdentityProvider,
  (provider) => provider.tokenRequests({ grantType: TOKEN_EXCHANGE })
)

const setup = Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  yield* provider.resetCounters
  return yield* TokenExchange.TokenExchange
})

// other-api tokens live 100 s, the users' own (demo API) tokens 300 s
layer(identity({ resources: { [otherApi]: { scope: "other.read", accessTokenTtl: 100 } } }))(
  "token exchange against the embedded provider",
  (it) => {
    describe("TokenExchange", () => {
      it.effect("500 concurrent calls of one user make one exchange, for that user and the target, and one renewal", () =>
        Effect.gen(function*() {
          const exchange = yield* setup
          const { user } = yield* signIn("alice")
          const tokens = yield* Effect.all(
            Array.from({ length: 500 }, () => exchange.getFor(user, "other")),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(yield* exchanges, 1)
          assert.strictEqual(new Set(tokens.map(value)).size, 1)
          const jwt = claims(value(tokens[0]!))
          assert.strictEqual(jwt.sub, "alice")
          assert.strictEqual(jwt.aud, otherApi)
          assert.strictEqual(jwt.scope, "other.read")
          assert.strictEqual(jwt.client_id, IdentityProvider.Clients.web.clientId)

          // in its renewal window (half of its 100 s), 500 concurrent calls renew it once
          yield* TestClock.adjust("50 seconds")
          const renewed = yield* Effect.all(
            Array.from({ length: 500 }, () => exchange.getFor(user, "other")),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(yield* exchanges, 2)
          assert.strictEqual(new Set(renewed.map(value)).size, 1)
          assert.notStrictEqual(value(renewed[0]!), value(tokens[0]!))
        }).pipe(Effect.provide(environment)))

      it.effect("two users never share an exchanged token", () =>
        Effect.gen(function*() {
          const exchange = yield* setup
          const alice = yield* signIn("alice", { sessionId: "a-1" })
          const bob = yield* signIn("bob", { sessionId: "b-1" })
          const calls = Array.from({ length: 100 }, (_, i) => i % 2 === 0 ? alice.user : bob.user)
          const tokens = yield* Effect.all(
            calls.map((user) => Effect.map(exchange.getFor(user, "other"), (token) => [user, token] as const)),
            { concurrency: "unbounded" }
          )
          for (const [user, token] of tokens) assert.strictEqual(claims(value(token)).sub, user.subject)
          assert.strictEqual(yield* exchanges, 2)
        }).pipe(Effect.provide(environment)))

      it.effect("a refreshed user token leads to a new exchange; the exchanged token is renewed before expiry", () =>
        Effect.gen(function*() {
          const exchange = yield* setup
          const userTokensService = yield* UserTokens.UserTokens
          const { user } = yield* signIn("carol")
          const first = yield* exchange.getFor(user, "other")
          assert.strictEqual(value(yield* exchange.getFor(user, "other")), value(first))
          assert.strictEqual(yield* exchanges, 1)

          yield* userTokensService.getFor(user, { forceRenewal: true }) // the subject token is refreshed
          // 500 concurrent callers after the refresh: one new exchange, which all of them get
          const afterRefresh = yield* Effect.all(
            Array.from({ length: 500 }, () => exchange.getFor(user, "other")),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(new Set(afterRefresh.map(value)).size, 1)
          const second = afterRefresh[0]!
          assert.notStrictEqual(value(second), value(first))
          assert.strictEqual(yield* exchanges, 2)
          assert.strictEqual(value(yield* exchange.getFor(user, "other")), value(second))
          assert.strictEqual(yield* exchanges, 2)

          // 100 s tokens are renewed at half their lifetime; the user's 300 s token is still fresh then
          yield* TestClock.adjust("49 seconds")
          assert.strictEqual(value(yield* exchange.getFor(user, "other")), value(second))
          yield* TestClock.adjust("1 second")
          const third = yield* exchange.getFor(user, "other")
          assert.notStrictEqual(value(third), value(second))
          assert.strictEqual(yield* exchanges, 3)
        }).pipe(Effect.provide(environment)))

      it.effect("per-request parameters get their own exchanged token", () =>
        Effect.gen(function*() {
          const exchange = yield* setup
          const { user } = yield* signIn("dora")
          const read = yield* exchange.getFor(user, "demo")
          const write = yield* exchange.getFor(user, "demo", { scope: "api.write" })
          assert.strictEqual(claims(value(read)).scope, "api.read")
          assert.strictEqual(claims(value(write)).scope, "api.write")
          yield* exchange.getFor(user, "demo", { scope: "api.write" })
          assert.strictEqual(yield* exchanges, 2)
        }).pipe(Effect.provide(environment)))

      it.effect("the named client calls the downstream API as the current user", () =>
        Effect.gen(function*() {
          yield* setup
          const { user } = yield* signIn("erin")
          const api = yield* BillingApi
          const response = yield* api.get("/data").pipe(CurrentUser.provide(user))
          assert.strictEqual(response.status, 200)
          const body = (yield* response.json) as { sub: string; scope: string }
          assert.strictEqual(body.sub, "erin")
          assert.strictEqual(body.scope, "api.read")
          const unknown = yield* Effect.flip(
            Effect.flatMap(TokenExchange.TokenExchange, (exchange) => exchange.getFor(user, "nowhere"))
          )
          assert.strictEqual(unknown._tag, "UnknownTokenClient")
        }).pipe(Effect.provide(environment)))
    })

    describe("TokenExchange.layerConfig", () => {
      /** Targets from the environment, the exchanging client in code; `worker` is a client-credentials client. */
      const fromEnv = (env: Record<string, string>) =>
        Effect.gen(function*() {
          const provider = yield* IdentityProvider.IdentityProvider
          return yield* Layer.build(TokenExchange.layerConfig(["BILLING"], { client: webClient(provider) })).pipe(
            Effect.map((context) => Context.get(context, TokenExchange.TokenExchange)),
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))
          )
        })
      /** The user tokens, with the service's own client-credentials client `worker` (the actor). */
      const withWorker = Layer.unwrapEffect(Effect.map(IdentityProvider.IdentityProvider, (provider) =>
        userTokens({
          clients: {
            worker: {
              issuer: provider.issuer,
              clientId: IdentityProvider.Clients.machineBasic.clientId,
              clientSecret: Redacted.make(IdentityProvider.Clients.machineBasic.clientSecret)
            }
          }
        })))

      it.scoped("targets and the actor token come from Effect Config; the exchanged token is the user's, for them", () =>
        Effect.gen(function*() {
          yield* Effect.flatMap(IdentityProvider.IdentityProvider, (provider) => provider.resetCounters)
          const exchange = yield* fromEnv({
            BILLING_RESOURCE: otherApi,
            BILLING_SCOPE: "other.read",
            BILLING_REQUESTED_TOKEN_TYPE: "urn:ietf:params:oauth:token-type:access_token",
            BILLING_ACTOR_CLIENT: "worker"
          })
          assert.deepStrictEqual(exchange.targets, ["BILLING"])
          const { user } = yield* signIn("fay")
          const token = yield* exchange.getFor(user, "BILLING")
          const jwt = claims(value(token))
          assert.strictEqual(jwt.sub, "fay")
          assert.strictEqual(jwt.aud, otherApi)
          assert.strictEqual(jwt.scope, "other.read")
          // the provider verified the actor token (the worker's client-credentials token) and named it
          assert.deepStrictEqual(jwt.act, { sub: IdentityProvider.Clients.machineBasic.clientId })
          assert.strictEqual(yield* exchanges, 1)
        }).pipe(Effect.provide(withWorker)))

      it.scoped("a bad or missing value fails the layer, naming the target and the field", () =>
        Effect.gen(function*() {
          const failure = (env: Record<string, string>) => Effect.flip(fromEnv(env))
          const cases: ReadonlyArray<readonly [Record<string, string>, string, string]> = [
            [{ BILLING_RESOURCE: "billing api" }, "targets.BILLING.resource", "absolute URI"],
            [{ BILLING_SCOPE: "x", BILLING_REQUESTED_TOKEN_TYPE: "jwt" }, "targets.BILLING.requestedTokenType", "URI"],
            [{ BILLING_AUDIENCE: " " }, "targets.BILLING.audience", "must not be empty"],
            [{ BILLING_SCOPE: "x", BILLING_ACTOR_CLIENT: "nobody" }, "targets.BILLING.actorClient", `"nobody"`],
            [{ BILING_SCOPE: "x" }, "targets.BILLING", "BILLING_AUDIENCE"]
          ]
          for (const [env, field, reason] of cases) {
            const error = yield* failure(env)
            if (error._tag !== "InvalidClientConfiguration") return assert.fail(`${field}: got ${error._tag}`)
            assert.strictEqual(error.field, field)
            assert.include(error.reason, reason)
            assert.include(error.message, `"TokenExchange" is invalid at "${field}"`)
          }
        }).pipe(Effect.provide(userTokens())))
    })

    describe("the provider's token-exchange grant", () => {
      it.effect("refuses a subject token issued to another client, or not issued by it", () =>
        Effect.gen(function*() {
          const provider = yield* IdentityProvider.IdentityProvider
          const endpoint = yield* TokenEndpoint.TokenEndpoint
          const client = yield* TokenClient.decode(webClient(provider))
          const exchangeWith = (subject: string) =>
            Effect.flip(endpoint.request(
              client,
              TokenEndpoint.Grant.TokenExchange({
                subjectToken: Redacted.make(subject),
                options: { resource: otherApi }
              })
            ))
          const foreign = yield* provider.mintAccessToken({ clientId: IdentityProvider.Clients.machineBasic.clientId })
          const refused = yield* exchangeWith(foreign)
          if (refused._tag === "TokenRequestRejected") {
            assert.strictEqual(refused.error, "invalid_grant")
            assert.strictEqual(refused.operation, "token_exchange")
          } else assert.fail(`expected TokenRequestRejected, got ${refused._tag}`)
          assertNoSecrets(renderings(refused), [foreign])
          const expired = yield* provider.mintAccessToken({ expiresIn: -10 })
          const stale = yield* exchangeWith(expired)
          assert.strictEqual(stale._tag, "TokenRequestRejected")
        }).pipe(Effect.provide(userTokens())))
    })
  }
)
