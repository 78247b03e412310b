import { AccessToken, AccessTokenHttpClient } from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { clientCredentials, identity } from "../../../test/support/environment.js"

class DemoApiClient extends Context.Tag("test/TokenParameters/DemoApiClient")<
  DemoApiClient,
  AccessTokenHttpClient.ClientCredentialsHttpClient
>() {}

const demoApiClient = Layer.unwrapEffect(
  Effect.map(
    DemoApi.DemoApi,
    (api) => AccessTokenHttpClient.layerClientCredentials(DemoApiClient, { client: "basic", baseUrl: api.url })
  )
)

/** What the demo API saw of the token: its scope and jti. */
const seen = (client: AccessTokenHttpClient.ClientCredentialsHttpClient) =>
  Effect.flatMap(client.get("/data"), (response) => {
    assert.strictEqual(response.status, 200)
    return response.json as Effect.Effect<{ readonly scope: string; readonly jti: string }>
  })

layer(identity())("per-request token parameters", (it) => {
  describe("withTokenParameters", () => {
    it.effect("a request's own scope gets its own cached token; the client's default token is untouched", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        yield* provider.resetCounters
        const api = yield* DemoApiClient
        const writer = api.pipe(AccessTokenHttpClient.withTokenParameters({ scope: "api.write" }))
        const plain = yield* seen(api)
        const narrow = yield* seen(writer)
        assert.strictEqual(plain.scope, "api.read")
        assert.strictEqual(narrow.scope, "api.write")
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "client_credentials" }), 2)
        // both are cached, each under its own key
        const again = yield* Effect.all([seen(api), seen(writer), seen(writer)], { concurrency: "unbounded" })
        assert.deepStrictEqual(again.map((a) => a.jti), [plain.jti, narrow.jti, narrow.jti])
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "client_credentials" }), 2)
      }).pipe(Effect.provide(demoApiClient.pipe(Layer.provideMerge(clientCredentials())))))

    it.effect("one request's effect can ask for its parameters with the CurrentTokenParameters reference", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        yield* provider.resetCounters
        const api = yield* DemoApiClient
        const both = yield* seen(api).pipe(
          Effect.provideService(AccessTokenHttpClient.CurrentTokenParameters, { scope: "api.read api.write" })
        )
        assert.strictEqual(both.scope, "api.read api.write")
        const plain = yield* seen(api)
        assert.strictEqual(plain.scope, "api.read")
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "client_credentials" }), 2)
      }).pipe(Effect.provide(demoApiClient.pipe(Layer.provideMerge(clientCredentials())))))
  })

  it.effect("a source without withParameters keeps its own token", () =>
    Effect.gen(function*() {
      const api = yield* DemoApi.DemoApi
      const provider = yield* IdentityProvider.IdentityProvider
      const token = yield* provider.mintAccessToken({ scope: "api.read" })
      const fixed = new AccessToken.AccessToken({
        accessToken: Redacted.make(token),
        tokenType: "Bearer",
        issuedAt: 0,
        expiresAt: Number.MAX_SAFE_INTEGER
      })
      const client = (yield* HttpClient.HttpClient).pipe(
        AccessTokenHttpClient.withAccessToken({ get: Effect.succeed(fixed), renew: () => Effect.succeed(fixed) }),
        AccessTokenHttpClient.withTokenParameters({ scope: "api.write" })
      )
      const response = yield* client.get(`${api.url}/data`)
      const body = (yield* response.json) as { scope: string }
      assert.strictEqual(body.scope, "api.read")
    }))
})
