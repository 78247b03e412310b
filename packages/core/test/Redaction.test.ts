import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { inspect } from "node:util"
import { assertNoSecrets, captureLogs } from "../../../test/support/redaction.js"
import { AccessToken } from "../src/AccessToken.js"
import * as AccessTokenHttpClient from "../src/AccessTokenHttpClient.js"
import * as ClientCredentialsTokens from "../src/ClientCredentialsTokens.js"
import * as CurrentUser from "../src/CurrentUser.js"
import * as TokenClient from "../src/TokenClient.js"
import * as TokenEndpoint from "../src/TokenEndpoint.js"
import * as TokenError from "../src/TokenError.js"
import * as TokenLock from "../src/TokenLock.js"
import { UserToken } from "../src/UserToken.js"
import * as UserTokens from "../src/UserTokens.js"
import * as UserTokenStore from "../src/UserTokenStore.js"

const clientSecret = "client-secret-0123456789"
const accessToken = "access-token-0123456789"
const refreshToken = "refresh-token-0123456789"
const secrets = [clientSecret, accessToken, refreshToken, Buffer.from(`web:${clientSecret}`).toString("base64")]

/** Every way Node and Effect render a value: String, JSON, inspect with and without getters, Cause.pretty. */
const renderings = (value: unknown): Array<string> => {
  const out = [
    String(value),
    JSON.stringify(value) ?? "",
    inspect(value),
    inspect(value, { depth: Infinity }),
    inspect(value, { depth: Infinity, getters: true }),
    inspect(value, { depth: Infinity, getters: true, showHidden: true }),
    Cause.pretty(Cause.fail(value)),
    Cause.pretty(Cause.die(value)),
    Cause.pretty(Cause.fail(value), { renderErrorCause: true })
  ]
  if (value instanceof Error) out.push(value.message, value.stack ?? "", inspect(value.cause, { getters: true }))
  return out
}

/** The same values through Effect's loggers (logfmt and JSON, message and cause). */
const logged = (values: ReadonlyArray<unknown>) =>
  Effect.map(
    captureLogs(Effect.forEach(values, (value) =>
      Effect.zipRight(
        Effect.logError("failed", value),
        Effect.logError(Cause.fail(value)).pipe(Effect.annotateLogs("value", value))
      ))),
    ({ lines }) => lines
  )

const token = new AccessToken({
  accessToken: Redacted.make(accessToken),
  tokenType: "Bearer",
  issuedAt: 0,
  expiresAt: 1
})

type Mode = "ok" | "invalid_grant" | "invalid_client" | "down" | "slow" | "not-json" | "wrong-type"
const provider = { mode: "ok" as Mode }
const json = (request: HttpClientRequest.HttpClientRequest, status: number, body: unknown, headers = {}) =>
  HttpClientResponse.fromWeb(
    request,
    new Response(typeof body === "string" ? body : JSON.stringify(body), {
      status,
      headers: { "content-type": typeof body === "string" ? "text/plain" : "application/json", ...headers }
    })
  )

/** A provider on the application's HttpClient: token endpoint answers by mode, discovery is missing. */
const transport = HttpClient.make((request) => {
  const url = new URL(request.url)
  if (url.pathname.includes(".well-known")) return Effect.succeed(json(request, 404, "not here"))
  switch (provider.mode) {
    case "ok":
      return Effect.succeed(json(request, 200, { access_token: accessToken, token_type: "Bearer", expires_in: 300 }))
    case "invalid_grant":
      return Effect.succeed(json(request, 400, { error: "invalid_grant" }))
    case "invalid_client":
      return Effect.succeed(json(request, 401, { error: "invalid_client" }))
    case "down":
      return Effect.succeed(json(request, 503, "down", { "retry-after": "5" }))
    case "slow":
      return Effect.as(Effect.sleep("10 seconds"), json(request, 200, {}))
    case "not-json":
      return Effect.succeed(json(request, 200, `access_token=${accessToken}`))
    case "wrong-type":
      return Effect.succeed(json(request, 200, { access_token: accessToken, token_type: "MAC", expires_in: 300 }))
  }
})

const client = { tokenEndpoint: "http://127.0.0.1:9/token", clientId: "web", clientSecret: Redacted.make(clientSecret) }

/** Produces every error the library can produce, through the library, with the secrets above in play. */
const everyError = Effect.gen(function*() {
  const errors: Array<unknown> = []
  const collect = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.tap(Effect.exit(effect), (exit) =>
      Effect.sync(() => {
        if (Exit.isFailure(exit)) errors.push(...Cause.failures(exit.cause), exit.cause)
      }))

  // configuration: a plain-string secret, an unparseable duration, an unknown client
  yield* collect(TokenClient.decode({ ...client, clientSecret: clientSecret as never }))
  const http = Layer.succeed(HttpClient.HttpClient, transport)
  yield* collect(Effect.scoped(Layer.build(
    ClientCredentialsTokens.layerMemory({
      clients: { app: { ...client, clientSecret: clientSecret as never } }
    }).pipe(Layer.provide(TokenEndpoint.layer()), Layer.provide(http))
  )))
  yield* collect(Effect.scoped(Layer.build(
    ClientCredentialsTokens.layerMemory({ clients: { app: client }, renewBefore: "soon" as never }).pipe(
      Layer.provide(TokenEndpoint.layer()),
      Layer.provide(http)
    )
  )))

  const endpoint = TokenEndpoint.layer({ timeout: "1 second" })
  const context = yield* Layer.build(
    Layer.mergeAll(
      ClientCredentialsTokens.layerMemory({ clients: { app: client }, backoff: false }),
      UserTokens.layer({ client, backoff: false }).pipe(
        Layer.provideMerge(UserTokenStore.layerMemory()),
        Layer.provide(TokenLock.layerMemory)
      )
    ).pipe(Layer.provideMerge(endpoint), Layer.provide(http))
  )
  const cc = yield* Effect.provide(ClientCredentialsTokens.ClientCredentialsTokens, context)
  const users = yield* Effect.provide(UserTokens.UserTokens, context)
  const store = yield* Effect.provide(UserTokenStore.UserTokenStore, context)
  const endpointService = yield* Effect.provide(TokenEndpoint.TokenEndpoint, context)

  yield* collect(cc.get("nobody"))
  for (const mode of ["invalid_client", "down", "not-json", "wrong-type", "slow"] as const) {
    provider.mode = mode
    yield* collect(cc.get("app", { scope: mode }))
  }
  // discovery of an issuer that has none
  yield* collect(endpointService.request(
    { ...client, tokenEndpoint: undefined, issuer: "http://127.0.0.1:9/issuer" } as never,
    TokenEndpoint.Grant.ClientCredentials({})
  ))

  // user tokens: no user, no tokens, a rejected refresh token, a provider down during refresh
  const alice = new CurrentUser.User({ subject: "alice", sessionId: "s1" })
  yield* collect(users.get())
  yield* collect(users.getFor(alice))
  for (const mode of ["down", "wrong-type", "invalid_grant"] as const) {
    provider.mode = mode
    yield* store.store(
      CurrentUser.storeKey(alice),
      new UserToken({ clientId: "web", accessToken: token, refreshToken: Redacted.make(refreshToken) })
    )
    yield* collect(users.getFor(alice))
  }

  // a named client whose API fails: transport error, status error, undecodable body
  provider.mode = "ok"
  const api = HttpClient.make((request) => {
    const url = new URL(request.url)
    if (url.pathname === "/transport") {
      return Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause: new Error("reset") }))
    }
    return Effect.succeed(json(request, url.pathname === "/status" ? 500 : 200, "not json"))
  })
  const named = AccessTokenHttpClient.withAccessToken(api, AccessTokenHttpClient.clientCredentialsSource(cc, "app"))
    .pipe(HttpClient.filterStatusOk)
  yield* collect(named.get("http://127.0.0.1:9/transport"))
  yield* collect(named.get("http://127.0.0.1:9/status"))
  yield* collect(Effect.flatMap(named.get("http://127.0.0.1:9/body"), (response) => response.json))
  const response = yield* named.get("http://127.0.0.1:9/body").pipe(Effect.orDie)

  // errors the library has no path to produce here, built as it builds them
  errors.push(
    new TokenError.TokenStoreError({ store: "memory", operation: "get", reason: "unreachable" }),
    new TokenError.NoCurrentUser()
  )
  return { errors, values: [token, response, yield* store.get(CurrentUser.storeKey(alice))] }
})

describe("redaction", () => {
  it.live("no secret in any rendering of any error the library produces, nor of its tokens and responses", () =>
    Effect.scoped(Effect.gen(function*() {
      const { errors, values } = yield* everyError
      const tags = new Set(errors.flatMap((error) => (error as { _tag?: string })._tag ?? []))
      for (
        const tag of [
          "InvalidClientConfiguration",
          "UnknownTokenClient",
          "TokenRequestRejected",
          "TokenEndpointUnavailable",
          "TokenEndpointTimeout",
          "InvalidTokenResponse",
          "DiscoveryFailed",
          "NoCurrentUser",
          "SignInRequired",
          "TokenStoreError",
          "RequestError",
          "ResponseError"
        ]
      ) assert.isTrue(tags.has(tag), `produced ${tag}`)
      const texts = [...errors, ...values].flatMap(renderings)
      texts.push(...(yield* logged([...errors, ...values])))
      assertNoSecrets(texts, secrets)
    })))

  it.effect("a plain string where a Redacted secret is expected is refused, saying how to give it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(TokenClient.decode({ ...client, clientSecret: clientSecret as never }))
      assert.strictEqual(error.field, "clientSecret")
      assert.include(error.message, "Redacted.make")
      assertNoSecrets(renderings(error), [clientSecret])
    }))

  it.effect("errors and responses of a named client carry the request without its Authorization header", () =>
    Effect.gen(function*() {
      const sent: Array<HttpClientRequest.HttpClientRequest> = []
      const api = HttpClient.make((request) => {
        sent.push(request)
        return Effect.succeed(json(request, 500, "no"))
      })
      const named = AccessTokenHttpClient.withAccessToken(api, {
        get: Effect.succeed(token),
        renew: () => Effect.succeed(token)
      })
      const response = yield* named.get("http://127.0.0.1:9/x")
      assert.strictEqual(sent[0]!.headers.authorization, `Bearer ${accessToken}`, "the API got the token")
      assert.isUndefined(response.request.headers.authorization)
      const error = yield* Effect.flip(HttpClient.filterStatusOk(named).get("http://127.0.0.1:9/x"))
      assert.strictEqual(error._tag, "ResponseError")
      assert.isUndefined(error.request.headers.authorization)
      if (error._tag === "ResponseError") assert.isUndefined(error.response.request.headers.authorization)
    }))
})
