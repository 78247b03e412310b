import { AccessTokenHttpClient, ClientCredentialsTokens, TokenError } from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { claims, clientCredentials, identity, tokenFromEnv, unusedPort } from "../../../test/support/environment.js"
import { assertNoSecrets, captureLogs, renderings } from "../../../test/support/redaction.js"

const value = (token: { readonly accessToken: Redacted.Redacted<string> }) => Redacted.value(token.accessToken)

class DemoApiClient extends Context.Tag("test/DemoApiClient")<
  DemoApiClient,
  AccessTokenHttpClient.ClientCredentialsHttpClient
>() {}

const demoApiClient = Layer.unwrapEffect(
  Effect.map(
    DemoApi.DemoApi,
    (api) => AccessTokenHttpClient.layerClientCredentials(DemoApiClient, { client: "basic", baseUrl: api.url })
  )
)

const setup = Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  yield* provider.setTokenFault(undefined)
  yield* provider.resetCounters
  return { provider, tokens: yield* ClientCredentialsTokens.ClientCredentialsTokens }
})

const requests = Effect.flatMap(IdentityProvider.IdentityProvider, (provider) => provider.tokenRequests())

layer(identity({ accessTokenTtl: 300 }))("client credentials against the embedded provider", (it) => {
  describe("obtaining and caching", () => {
    it.effect("obtains a JWT for the demo API once and reuses it", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const first = yield* tokens.get("basic")
        const second = yield* tokens.get("basic")
        assert.strictEqual(value(first), value(second))
        assert.strictEqual(
          yield* provider.tokenRequests({ grantType: "client_credentials", clientId: "machine-basic" }),
          1
        )
        assert.strictEqual(first.tokenType, "Bearer")
        assert.strictEqual(first.expiresAt - first.issuedAt, 300_000)
        const jwt = claims(value(first))
        assert.strictEqual(jwt.aud, IdentityProvider.Resources.demoApi)
        assert.strictEqual(jwt.client_id, "machine-basic")
        assert.strictEqual(jwt.scope, "api.read")
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("client_secret_post with a configured token endpoint works the same", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const token = yield* tokens.get("post")
        assert.strictEqual(claims(value(token)).client_id, "machine-post")
        assert.strictEqual(yield* provider.tokenRequests({ clientId: "machine-post" }), 1)
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("renews a buffer before expiry (TestClock), and never hands out an expired token", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const first = yield* tokens.get("basic")
        yield* TestClock.adjust("239 seconds")
        assert.strictEqual(value(yield* tokens.get("basic")), value(first))
        assert.strictEqual(yield* requests, 1)
        yield* TestClock.adjust("1 second") // 60 s before expiry: renew
        const second = yield* tokens.get("basic")
        assert.notStrictEqual(value(second), value(first))
        assert.strictEqual(yield* requests, 2)
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("with no renewal buffer, the token is used until expiry and not a millisecond after", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const first = yield* tokens.get("basic")
        yield* TestClock.adjust("299999 millis")
        assert.strictEqual(value(yield* tokens.get("basic")), value(first))
        yield* TestClock.adjust("1 millis")
        const second = yield* tokens.get("basic")
        assert.notStrictEqual(value(second), value(first))
        assert.isAbove(second.expiresAt, 300_000)
      }).pipe(Effect.provide(clientCredentials({ renewBefore: 0 }))))

    it.effect("force renewal obtains a new token; invalidate drops only the token it names", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const first = yield* tokens.get("basic")
        const forced = yield* tokens.get("basic", { forceRenewal: true })
        assert.notStrictEqual(value(forced), value(first))
        assert.strictEqual(value(yield* tokens.get("basic")), value(forced))
        yield* tokens.invalidate("basic", { ifToken: first }) // stale: no effect
        assert.strictEqual(value(yield* tokens.get("basic")), value(forced))
        assert.strictEqual(yield* requests, 2)
        yield* tokens.invalidate("basic", { ifToken: forced })
        const third = yield* tokens.get("basic")
        assert.notStrictEqual(value(third), value(forced))
        yield* tokens.invalidate("basic")
        assert.notStrictEqual(value(yield* tokens.get("basic")), value(third))
        assert.strictEqual(yield* requests, 4)
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("10,000 concurrent callers on a cold key: exactly one request reaches the provider", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const all = yield* Effect.all(Array.from({ length: 10_000 }, () => tokens.get("basic")), {
          concurrency: "unbounded"
        })
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "client_credentials" }), 1)
        assert.strictEqual(new Set(all.map(value)).size, 1)
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("every parameter is part of the key: scope, resource and extra parameters get their own tokens", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const variants = [
          {},
          { scope: "api.write" },
          { resource: IdentityProvider.Resources.otherApi, scope: "other.read" },
          { parameters: { tenant: "a" } },
          { parameters: { tenant: "b" } }
        ]
        const concurrent = yield* Effect.all(
          variants.flatMap((options) => Array.from({ length: 20 }, () => tokens.get("basic", options))),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(yield* requests, variants.length)
        assert.strictEqual(new Set(concurrent.map(value)).size, variants.length)
        // sequentially, each variant is served from its own cache entry
        for (const [index, options] of variants.entries()) {
          assert.strictEqual(value(yield* tokens.get("basic", options)), value(concurrent[index * 20]!))
        }
        assert.strictEqual(yield* requests, variants.length)
        const other = claims(value(concurrent[40]!))
        assert.strictEqual(other.aud, IdentityProvider.Resources.otherApi)
        assert.strictEqual(other.scope, "other.read")
        assert.strictEqual(claims(value(concurrent[20]!)).scope, "api.write")
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("the first caller of a key is interrupted: the others still get the token", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        yield* provider.setTokenFault({ _tag: "Delay", millis: 300 }, { times: 1 })
        const first = yield* Effect.fork(tokens.get("basic"))
        yield* Effect.yieldNow()
        const others = yield* Effect.fork(
          Effect.all(Array.from({ length: 20 }, () => tokens.get("basic")), { concurrency: "unbounded" })
        )
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(first)
        const tokensOfOthers = yield* Fiber.join(others)
        assert.strictEqual(new Set(tokensOfOthers.map(value)).size, 1)
        assert.strictEqual(yield* requests, 1)
      }).pipe(Effect.provide(clientCredentials())))
  })

  describe("failures are typed, say what happened, and are never cached", () => {
    const recovers = (client: string) =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        yield* tokens.get(client)
        assert.strictEqual(yield* requests, 1)
      })

    it.effect("a wrong secret is rejected as invalid_client", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const error = yield* Effect.flip(tokens.get("wrongSecret"))
        assert.strictEqual(error._tag, "TokenRequestRejected")
        if (error._tag !== "TokenRequestRejected") return
        assert.strictEqual(error.error, "invalid_client")
        assert.strictEqual(error.status, 401)
        assert.include(error.message, "Check the client id, the client secret")
        // not cached: a second call asks again
        yield* Effect.flip(tokens.get("wrongSecret"))
        assert.strictEqual(yield* requests, 2)
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("a client unknown to the provider, and a client name unknown to us", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const rejected = yield* Effect.flip(tokens.get("unknownClient"))
        assert.strictEqual(rejected._tag === "TokenRequestRejected" && rejected.error, "invalid_client")
        const unknown = yield* Effect.flip(tokens.get("no-such-name"))
        assert.strictEqual(unknown._tag, "UnknownTokenClient")
        assert.include(unknown.message, `No token client named "no-such-name"`)
        assert.include(unknown.message, "basic, post")
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("the provider is down: TokenEndpointUnavailable", () =>
      Effect.gen(function*() {
        const port = yield* unusedPort
        const down = {
          tokenEndpoint: `http://127.0.0.1:${port}/token`,
          clientId: "machine-basic",
          clientSecret: Redacted.make(IdentityProvider.Clients.machineBasic.clientSecret)
        }
        yield* Effect.gen(function*() {
          const { tokens } = yield* setup
          const error = yield* Effect.flip(tokens.get("down"))
          assert.strictEqual(error._tag, "TokenEndpointUnavailable")
          assert.include(error.message, "ECONNREFUSED")
          assert.include(error.message, `http://127.0.0.1:${port}/token`)
          assert.include(error.message, "the next call tries again")
        }).pipe(Effect.provide(clientCredentials({ clients: { down } })))
      }))

    it.effect("a provider slower than the timeout: TokenEndpointTimeout, and the request is aborted", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        yield* provider.setTokenFault({ _tag: "Delay", millis: 1_000 }, { times: 1 })
        const fiber = yield* Effect.fork(Effect.flip(tokens.get("basic")))
        yield* TestClock.adjust("2 seconds")
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error._tag, "TokenEndpointTimeout")
        assert.include(error.message, "did not complete within 2000 ms")
        yield* TestClock.adjust("1 second") // the backoff window after a transient failure
        yield* recovers("basic").pipe(Effect.zipRight(Effect.void))
      }).pipe(Effect.provide(clientCredentials())))

    const faults: ReadonlyArray<[IdentityProvider.TokenEndpointFault, string, string]> = [
      [{ _tag: "ServerError", status: 503 }, "TokenEndpointUnavailable", "HTTP 503"],
      [{ _tag: "NonJson" }, "InvalidTokenResponse", "content-type"],
      [{ _tag: "TruncatedJson" }, "InvalidTokenResponse", "invalid response"],
      [{ _tag: "MalformedJson" }, "InvalidTokenResponse", "invalid response"],
      [{ _tag: "WrongTokenType" }, "InvalidTokenResponse", "unsupported operation"]
    ]
    for (const [fault, tag, text] of faults) {
      it.effect(`${fault._tag} → ${tag}; the next call after the fault clears succeeds`, () =>
        Effect.gen(function*() {
          const { provider, tokens } = yield* setup
          yield* provider.setTokenFault(fault, { times: 1 })
          const error = yield* Effect.flip(tokens.get("basic"))
          assert.strictEqual(error._tag, tag)
          assert.include(error.message, text)
          // a transient failure is backed off: the next call within the window fails fast
          if (TokenError.isTransient(error)) yield* TestClock.adjust("1 second")
          const token = yield* tokens.get("basic")
          assert.strictEqual(yield* requests, 2)
          assert.strictEqual(value(yield* tokens.get("basic")), value(token))
        }).pipe(Effect.provide(clientCredentials())))
    }

    it.effect("a response without expires_in gets the configured default lifetime, not forever", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        yield* provider.setTokenFault({ _tag: "MissingExpiresIn" }, { times: 1 })
        const token = yield* tokens.get("basic")
        assert.strictEqual(token.expiresAt - token.issuedAt, 120_000)
        yield* TestClock.adjust("60 seconds")
        assert.notStrictEqual(value(yield* tokens.get("basic")), value(token))
      }).pipe(Effect.provide(clientCredentials({ endpoint: { defaultLifetime: "2 minutes" } }))))

    it.effect("clients load from Effect Config (environment variables); a bad value names client and field", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const token = yield* tokenFromEnv({
          WORKER_ISSUER: provider.issuer,
          WORKER_CLIENT_ID: "machine-post",
          WORKER_CLIENT_SECRET: IdentityProvider.Clients.machinePost.clientSecret,
          WORKER_AUTHENTICATION: "client_secret_post",
          WORKER_SCOPE: "api.write"
        })
        assert.strictEqual(claims(value(token)).scope, "api.write")
        const error = yield* Effect.flip(tokenFromEnv({
          WORKER_TOKEN_ENDPOINT: "ftp://example.test/token",
          WORKER_CLIENT_ID: "machine-post",
          WORKER_CLIENT_SECRET: "whatever-secret"
        }))
        assert.strictEqual(error._tag, "InvalidClientConfiguration")
        assert.include(error.message, `"WORKER" is invalid at "tokenEndpoint"`)
        const missing = yield* Effect.flip(tokenFromEnv({ WORKER_ISSUER: provider.issuer }))
        assert.strictEqual(missing._tag, "ConfigError")
        assert.include(String(missing), "WORKER_CLIENT_ID")
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("invalid configuration fails the layer, naming the client and the field", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const build = (client: Record<string, unknown>) =>
          Effect.flip(Layer.build(ClientCredentialsTokens.layerMemory({ clients: { broken: client as never } })))
            .pipe(Effect.scoped, Effect.filterOrDieMessage(TokenError.isInvalidClientConfiguration, "a config error"))
        const noEndpoint = yield* build({ clientId: "x", clientSecret: Redacted.make("x") })
        assert.strictEqual(noEndpoint.field, "issuer")
        assert.include(noEndpoint.message, `token client "broken"`)
        const badUrl = yield* build({ issuer: "not a url", clientId: "x", clientSecret: Redacted.make("x") })
        assert.strictEqual(badUrl.field, "issuer")
        const noSecret = yield* build({ issuer: provider.issuer, clientId: "x" })
        assert.strictEqual(noSecret.field, "clientSecret")
        const badAuth = yield* build({
          issuer: provider.issuer,
          clientId: "x",
          clientSecret: Redacted.make("x"),
          authentication: "private_key_jwt_someday"
        })
        assert.strictEqual(badAuth.field, "authentication")
      }).pipe(Effect.provide(clientCredentials())))
  })

  describe("the token-attaching HTTP client", () => {
    const call = (path: string) => Effect.flatMap(DemoApiClient, (client) => client.get(path)).pipe(Effect.scoped)

    it.effect("attaches the token; the API sees the client", () =>
      Effect.gen(function*() {
        yield* setup
        const response = yield* call("/data")
        assert.strictEqual(response.status, 200)
        const body = (yield* response.json) as Record<string, unknown>
        assert.strictEqual(body.client_id, "machine-basic")
        assert.strictEqual(body.path, "/data")
        yield* call("/again")
        assert.strictEqual(yield* requests, 1)
      }).pipe(Effect.provide(demoApiClient), Effect.provide(clientCredentials())))

    it.effect("a 401 causes one renewal and one retry", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        yield* setup
        yield* call("/warm")
        const before = yield* api.requests
        yield* api.rejectNextValidTokens(1)
        const response = yield* call("/data")
        assert.strictEqual(response.status, 200)
        assert.strictEqual(yield* requests, 2)
        assert.strictEqual((yield* api.requests) - before, 2)
      }).pipe(Effect.provide(demoApiClient), Effect.provide(clientCredentials())))

    it.effect("a second 401 reaches the caller as it is", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        yield* setup
        yield* api.rejectNextValidTokens(2)
        const response = yield* call("/data")
        assert.strictEqual(response.status, 401)
        assert.include(response.headers["www-authenticate"] ?? "", "Bearer")
        assert.strictEqual(yield* requests, 2)
      }).pipe(Effect.provide(demoApiClient), Effect.provide(clientCredentials())))

    it.effect("transform: HttpClient.filterStatusOk turns the second 401 into a ResponseError", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        yield* setup
        const strict = yield* Layer.build(
          AccessTokenHttpClient.layerClientCredentials(DemoApiClient, {
            client: "basic",
            baseUrl: api.url,
            transform: HttpClient.filterStatusOk
          })
        ).pipe(Effect.map(Context.get(DemoApiClient)))
        assert.strictEqual((yield* Effect.scoped(strict.get("/data"))).status, 200)
        yield* api.rejectNextValidTokens(2)
        const error = yield* Effect.flip(Effect.scoped(strict.get("/data")))
        assert.strictEqual(error._tag, "ResponseError")
        if (error._tag === "ResponseError") assert.strictEqual(error.response.status, 401)
        assert.strictEqual(yield* requests, 2, "the first 401 still renewed the token once")
      }).pipe(Effect.scoped, Effect.provide(clientCredentials())))

    it.effect("50 concurrent replacements of one rejected token renew once; a late 401 renews nothing", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const old = yield* tokens.get("basic")
        const replacements = yield* Effect.all(Array.from({ length: 50 }, () => tokens.renew("basic", old)), {
          concurrency: "unbounded"
        })
        assert.strictEqual(new Set(replacements.map(value)).size, 1)
        assert.notStrictEqual(value(replacements[0]!), value(old))
        assert.strictEqual(yield* requests, 2)
        // an API that rejects the old token late: the replacement is already there
        const late = yield* tokens.renew("basic", old)
        assert.strictEqual(value(late), value(replacements[0]!))
        assert.strictEqual(yield* requests, 2)
        // and a request through the client uses the replacement without asking again
        const response = yield* call("/data")
        assert.strictEqual(response.status, 200)
        assert.strictEqual(yield* requests, 2)
      }).pipe(Effect.provide(demoApiClient), Effect.provide(clientCredentials())))

    it.effect("the middleware wraps a user's own HttpClient", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        const { tokens } = yield* setup
        const client = (yield* HttpClient.HttpClient).pipe(
          AccessTokenHttpClient.withAccessToken(
            AccessTokenHttpClient.clientCredentialsSource(tokens, "post", { scope: "api.write" })
          ),
          HttpClient.filterStatusOk
        )
        const response = yield* client.get(`${api.url}/own`).pipe(Effect.scoped)
        const json = (yield* response.json) as Record<string, unknown>
        assert.strictEqual(json.client_id, "machine-post")
        assert.strictEqual(json.scope, "api.write")
      }).pipe(Effect.provide(clientCredentials())))
  })

  describe("secrets stay secret", () => {
    it.effect("no token or secret appears in logs, errors or renderings", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const { exit, lines } = yield* captureLogs(Effect.gen(function*() {
          const token = yield* tokens.get("basic")
          yield* Effect.log("got a token", token)
          yield* Effect.logError("a failure", yield* Effect.flip(tokens.get("wrongSecret")))
          yield* provider.setTokenFault({ _tag: "WrongTokenType" }, { times: 1 })
          const invalid = yield* Effect.flip(tokens.get("post"))
          yield* Effect.logError(invalid)
          yield* Effect.logError(yield* Effect.flip(tokens.get("unknownClient")))
          return { token, invalid }
        }))
        assert.isTrue(Exit.isSuccess(exit))
        if (!Exit.isSuccess(exit)) return
        const { invalid, token } = exit.value
        const secrets = [
          value(token),
          IdentityProvider.Clients.machineBasic.clientSecret,
          IdentityProvider.Clients.machinePost.clientSecret,
          "not-the-secret-of-machine-basic",
          "secret-of-an-unknown-client"
        ]
        assertNoSecrets([...lines, ...renderings(token), ...renderings(invalid)], secrets)
        assert.isAbove(lines.length, 3)
      }).pipe(Effect.provide(clientCredentials())))
  })
})
