/**
 * How the token path classifies what a misbehaving provider answers, against the embedded provider and its faults:
 * the decision table of docs/errors.md ("How provider answers are classified"), the transport, eager discovery,
 * and a rotated refresh token that is never lost.
 */
import {
  AccessTokenManagement,
  ClientCredentialsTokens,
  CurrentUser,
  OidcEvents,
  TokenError,
  UserTokens,
  UserTokenStore
} from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { claims, clientCredentials, identity, unusedPort, userTokens } from "../../../test/support/environment.js"
import { signIn } from "../../../test/support/login.js"

const setup = Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  yield* provider.setTokenFault(undefined)
  yield* provider.resetCounters
  return provider
})

const storedRefreshToken = (user: CurrentUser.User) =>
  Effect.flatMap(UserTokenStore.UserTokenStore, (store) => store.get(CurrentUser.storeKey(user))).pipe(
    Effect.map((stored) => Option.flatMapNullable(stored, (token) => token.refreshToken)),
    Effect.map(Option.map(Redacted.value))
  )

layer(identity({ accessTokenTtl: 300 }))("a misbehaving provider, classified", (it) => {
  describe("the transport", () => {
    it.effect("discovery, client credentials, refresh and revocation go through the application's HttpClient", () =>
      Effect.gen(function*() {
        const provider = yield* setup
        const seen: Array<string> = []
        const recording = Layer.effect(
          HttpClient.HttpClient,
          Effect.map(
            HttpClient.HttpClient,
            HttpClient.tapRequest((request) => Effect.sync(() => seen.push(`${request.method} ${request.url}`)))
          )
        ).pipe(Layer.provide(FetchHttpClient.layer))
        const managed = AccessTokenManagement.layerServerMemory({
          client: {
            issuer: provider.issuer,
            clientId: IdentityProvider.Clients.web.clientId,
            clientSecret: Redacted.make(IdentityProvider.Clients.web.clientSecret)
          },
          resource: IdentityProvider.Resources.demoApi
        }).pipe(Layer.provide(recording), Layer.orDie)
        yield* Effect.gen(function*() {
          const { user } = yield* signIn("olivia")
          yield* TestClock.adjust("301 seconds")
          yield* Effect.flatMap(UserTokens.UserTokens, (tokens) => tokens.getFor(user))
          yield* Effect.flatMap(
            ClientCredentialsTokens.ClientCredentialsTokens,
            (tokens) => tokens.get(AccessTokenManagement.appClient)
          )
          yield* Effect.flatMap(OidcEvents.OidcEvents, (events) => events.signingOut(user))
        }).pipe(Effect.provide(managed))
        assert.deepStrictEqual(seen, [
          `GET ${provider.discoveryUrl}`, // eagerly, when the layer was built
          `POST ${provider.tokenEndpoint}`, // the refresh
          `POST ${provider.tokenEndpoint}`, // the app's client credentials
          `POST ${provider.revocationEndpoint}` // the sign-out
        ])
      }))
  })

  describe("no usable body: classified by status", () => {
    for (const status of [401, 403]) {
      it.effect(`client credentials, HTTP ${status} with an empty body → TokenRequestRejected "invalid_client"`, () =>
        Effect.gen(function*() {
          const provider = yield* setup
          const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
          yield* provider.setTokenFault({ _tag: "EmptyBody", status }, { times: 1 })
          const error = yield* Effect.flip(tokens.get("basic"))
          assert.strictEqual(error._tag, "TokenRequestRejected")
          if (error._tag !== "TokenRequestRejected") return
          assert.strictEqual(error.status, status)
          assert.strictEqual(error.error, "invalid_client")
          assert.isTrue(error.inferred)
          assert.isFalse(TokenError.isTransient(error), "a rejected client is not retried")
          assert.include(error.message, "no OAuth error in the response body")
          assert.include(error.message, "Check the client id, the client secret")
        }).pipe(Effect.provide(clientCredentials())))
    }

    it.effect("client credentials, HTTP 400 with an empty body → TokenRequestRejected \"invalid_request\"", () =>
      Effect.gen(function*() {
        const provider = yield* setup
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        yield* provider.setTokenFault({ _tag: "EmptyBody", status: 400 }, { times: 1 })
        const error = yield* Effect.flip(tokens.get("basic"))
        assert.strictEqual(error._tag, "TokenRequestRejected")
        if (error._tag === "TokenRequestRejected") assert.strictEqual(error.error, "invalid_request")
      }).pipe(Effect.provide(clientCredentials())))

    for (const status of [400, 401, 403]) {
      it.effect(`refresh, HTTP ${status} with an empty body → SignInRequired, the user's tokens cleared`, () =>
        Effect.gen(function*() {
          const provider = yield* setup
          const tokens = yield* UserTokens.UserTokens
          const { user } = yield* signIn(`empty-${status}`)
          yield* TestClock.adjust("301 seconds")
          yield* provider.setTokenFault({ _tag: "EmptyBody", status }, { times: 1 })
          const error = yield* Effect.flip(tokens.getFor(user))
          assert.strictEqual(error._tag, "SignInRequired")
          if (error._tag === "SignInRequired") assert.strictEqual(error.reason, "refresh-token-rejected")
          assert.isTrue(Option.isNone(yield* storedRefreshToken(user)), "the dead refresh token is gone")
          assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 1)
        }).pipe(Effect.provide(userTokens())))
    }

    it.effect("429 with Retry-After in seconds → transient TokenEndpointUnavailable carrying retryAfter", () =>
      Effect.gen(function*() {
        const provider = yield* setup
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        yield* provider.setTokenFault({ _tag: "ServerError", status: 429, retryAfter: 7 }, { times: 1 })
        const error = yield* Effect.flip(tokens.get("basic"))
        assert.strictEqual(error._tag, "TokenEndpointUnavailable")
        if (error._tag !== "TokenEndpointUnavailable") return
        assert.strictEqual(error.status, 429)
        assert.strictEqual(error.retryAfter, 7_000)
        assert.isTrue(TokenError.isTransient(error))
        assert.include(error.message, "asked to wait 7 s")
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("503 with Retry-After as an HTTP date → retryAfter counted from now (TestClock)", () =>
      Effect.gen(function*() {
        const provider = yield* setup
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        yield* TestClock.setTime(Date.parse("2030-01-01T00:00:00Z"))
        yield* provider.setTokenFault(
          { _tag: "ServerError", status: 503, retryAfter: "Tue, 01 Jan 2030 00:02:00 GMT" },
          { times: 1 }
        )
        const error = yield* Effect.flip(tokens.get("basic"))
        assert.strictEqual(error._tag, "TokenEndpointUnavailable")
        if (error._tag === "TokenEndpointUnavailable") assert.strictEqual(error.retryAfter, 120_000)
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("a stretch of downtime: every request meanwhile is a transient 503", () =>
      Effect.gen(function*() {
        const provider = yield* setup
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        yield* provider.setTokenFault({ _tag: "Downtime", millis: 60_000 })
        for (const client of ["basic", "post"]) {
          const error = yield* Effect.flip(tokens.get(client))
          assert.strictEqual(error._tag, "TokenEndpointUnavailable")
          if (error._tag === "TokenEndpointUnavailable") assert.strictEqual(error.status, 503)
        }
        yield* provider.setTokenFault(undefined)
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("a huge body → InvalidTokenResponse after the response-size bound", () =>
      Effect.gen(function*() {
        const provider = yield* setup
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        yield* provider.setTokenFault({ _tag: "HugeBody", bytes: 5_000_000 }, { times: 1 })
        const error = yield* Effect.flip(tokens.get("basic"))
        assert.strictEqual(error._tag, "InvalidTokenResponse")
        assert.include(error.message, "larger than 1048576 bytes")
        assert.isFalse(TokenError.isTokenError(error) && TokenError.isTransient(error))
      }).pipe(Effect.provide(clientCredentials())))
  })

  describe("a rotated refresh token is never lost", () => {
    const faults = [{ _tag: "WrongTokenType" }, { _tag: "MissingAccessToken" }] as const
    for (const fault of faults) {
      it.effect(`${fault._tag}: the rotated refresh token is stored before the error, and the next refresh works`, () =>
        Effect.gen(function*() {
          const provider = yield* setup
          const tokens = yield* UserTokens.UserTokens
          const { response, user } = yield* signIn(`rotation-${fault._tag}`)
          yield* TestClock.adjust("301 seconds")
          yield* provider.setTokenFault(fault, { times: 1 })
          const error = yield* Effect.flip(tokens.getFor(user))
          assert.strictEqual(error._tag, "InvalidTokenResponse")
          const rotated = Option.getOrThrow(yield* storedRefreshToken(user))
          assert.notStrictEqual(rotated, response.refresh_token, "the store holds the provider's new refresh token")
          // presenting the spent one would make the provider revoke the grant (SignInRequired)
          const token = yield* tokens.getFor(user)
          assert.strictEqual(claims(Redacted.value(token.accessToken)).sub, `rotation-${fault._tag}`)
          assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 2)
        }).pipe(Effect.provide(userTokens())))
    }
  })

  describe("discovery at start-up", () => {
    it.effect("an unreachable issuer fails the layer with DiscoveryFailed naming the well-known URL", () =>
      Effect.gen(function*() {
        const port = yield* unusedPort
        const issuer = `http://127.0.0.1:${port}`
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(
          AccessTokenManagement.layerClientCredentialsMemory({
            clients: { down: { issuer, clientId: "machine", clientSecret: Redacted.make("s") } }
          }).pipe(Layer.provide(FetchHttpClient.layer))
        )))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isSuccess(exit)) return
        const error = Chunk.unsafeHead(Cause.failures(exit.cause))
        assert.strictEqual(error._tag, "DiscoveryFailed")
        if (error._tag !== "DiscoveryFailed") return
        assert.strictEqual(error.discoveryUrl, `${issuer}/.well-known/openid-configuration`)
        assert.isTrue(error.transient)
        assert.include(error.message, `${issuer}/.well-known/openid-configuration`)
        assert.include(error.message, "ECONNREFUSED")
      }))

    it.effect("with discovery: \"lazy\", the layer builds and the first token request reports DiscoveryFailed", () =>
      Effect.gen(function*() {
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const error = yield* Effect.flip(tokens.get("down"))
        assert.strictEqual(error._tag, "DiscoveryFailed")
        assert.include(error.message, "/.well-known/openid-configuration")
      }).pipe(
        Effect.provide(
          Layer.unwrapEffect(Effect.map(unusedPort, (port) =>
            AccessTokenManagement.layerClientCredentialsMemory({
              clients: {
                down: { issuer: `http://127.0.0.1:${port}`, clientId: "machine", clientSecret: Redacted.make("s") }
              },
              discovery: "lazy"
            }).pipe(Layer.provide(FetchHttpClient.layer), Layer.orDie)))
        )
      ))
  })
})
