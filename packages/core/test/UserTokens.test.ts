import {
  AccessToken,
  AccessTokenHttpClient,
  AccessTokenManagement,
  ClientCredentialsTokens,
  ClusterEvents,
  CurrentUser,
  OidcEvents,
  TokenEndpoint,
  TokenLock,
  UserToken,
  UserTokens,
  UserTokenStore
} from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import type * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, expectTypeOf, layer } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import { claims, identity, userTokens } from "../../../test/support/environment.js"
import { signIn } from "../../../test/support/login.js"
import { assertNoSecrets, assertSameSecret, captureLogs, renderings } from "../../../test/support/redaction.js"

const value = (redacted: Redacted.Redacted<string>) => Redacted.value(redacted)

class DemoApiClient
  extends Context.Tag("test/UserDemoApiClient")<DemoApiClient, AccessTokenHttpClient.UserHttpClient>()
{}

const demoApiClient = Layer.unwrapEffect(
  Effect.map(DemoApi.DemoApi, (api) => AccessTokenHttpClient.layerUser(DemoApiClient, { baseUrl: api.url }))
)

class TypedDemoApiClient extends Context.Tag("test/TypedDemoApiClient")<
  TypedDemoApiClient,
  AccessTokenHttpClient.CurrentUserHttpClient
>() {}

const typedDemoApiClient = Layer.unwrapEffect(
  Effect.map(
    DemoApi.DemoApi,
    (api) => AccessTokenHttpClient.layerCurrentUser(TypedDemoApiClient, { baseUrl: api.url })
  )
)

const refreshes = Effect.flatMap(
  IdentityProvider.IdentityProvider,
  (provider) => provider.tokenRequests({ grantType: "refresh_token" })
)

const setup = Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  yield* provider.setTokenFault(undefined)
  yield* provider.resetCounters
  return {
    provider,
    tokens: yield* UserTokens.UserTokens,
    store: yield* UserTokenStore.UserTokenStore,
    events: yield* OidcEvents.OidcEvents
  }
})

const stored = (user: CurrentUser.User, params?: { resource?: string }) =>
  Effect.flatMap(UserTokenStore.UserTokenStore, (store) =>
    store.get(CurrentUser.storeKey(user), {
      resource: params?.resource ?? IdentityProvider.Resources.demoApi
    })).pipe(Effect.map(Option.getOrThrow))

const echo = (user: CurrentUser.User, path = "/data") =>
  Effect.flatMap(DemoApiClient, (client) => client.get(path)).pipe(
    Effect.flatMap((response) => response.json),
    Effect.map((body) => body as Record<string, unknown>),
    Effect.scoped,
    CurrentUser.provide(user)
  )

/** A memory store whose next write, once armed, waits at a gate: to hold a refresh between provider and store. */
const gate = (() => {
  let armed = false
  let reached = Effect.runSync(Deferred.make<UserToken.UserToken>())
  let opened = Effect.runSync(Deferred.make<void>())
  return {
    arm: Effect.sync(() => {
      armed = true
      reached = Effect.runSync(Deferred.make<UserToken.UserToken>())
      opened = Effect.runSync(Deferred.make<void>())
    }),
    reached: Effect.suspend(() => Deferred.await(reached)),
    open: Effect.suspend(() => Deferred.succeed(opened, void 0)),
    hold: (token: UserToken.UserToken) =>
      Effect.suspend(() => {
        if (!armed) return Effect.void
        armed = false
        return Deferred.succeed(reached, token).pipe(Effect.zipRight(Deferred.await(opened)))
      })
  }
})()

const gatedStore = Layer.sync(UserTokenStore.UserTokenStore, () => {
  const memory = UserTokenStore.makeMemory()
  return {
    ...memory,
    store: (user, token, params) => Effect.zipRight(gate.hold(token), memory.store(user, token, params))
  }
})

layer(identity({ accessTokenTtl: 300 }))("user tokens against the embedded provider", (it) => {
  describe("seeding and using the store", () => {
    it.effect("tokenValidated stores the login's tokens; the named client attaches the right user's token", () =>
      Effect.gen(function*() {
        yield* setup
        const alice = yield* signIn("alice", { sessionId: "alice-browser-1" })
        const bob = yield* signIn("bob", { sessionId: "bob-browser-1" })
        const token = yield* stored(alice.user)
        assertSameSecret(value(token.accessToken!.accessToken), alice.response.access_token)
        assertSameSecret(value(token.refreshToken!), alice.response.refresh_token!)
        assert.isUndefined(token.idToken, "the ID token is not kept in the store unless asked (keepIdToken)")
        assert.strictEqual(token.clientId, "web")
        assert.strictEqual((yield* echo(alice.user)).sub, "alice")
        assert.strictEqual((yield* echo(bob.user)).sub, "bob")
        assert.strictEqual(yield* refreshes, 0)
      }).pipe(Effect.provide(demoApiClient), Effect.provide(userTokens())))

    it.effect("by default no ID token is stored: not the login's, nor the one a refresh answers with", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const { user } = yield* signIn("ivan")
        assert.isUndefined((yield* stored(user)).idToken)
        // oidc-provider answers a refresh of an `openid` grant with an ID token
        yield* tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user))
        assert.strictEqual(yield* refreshes, 1)
        assert.isUndefined((yield* stored(user)).idToken)
      }).pipe(Effect.provide(userTokens())))

    it.effect("keepIdToken: the login's ID token is stored, and a refresh stores the ID token it answers with", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const { response, user } = yield* signIn("ida")
        assertSameSecret(value((yield* stored(user)).idToken!), response.id_token!)
        yield* tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user))
        assert.strictEqual(yield* refreshes, 1)
        // within the same second oidc-provider's refreshed ID token can equal the login's byte for byte: that it
        // replaces the stored one is shown with a provider whose refresh answers a different ID token
        // (TokenEndpointTransport.test.ts); here, that a refresh keeps a valid ID token of the same user
        assert.strictEqual(claims(value((yield* stored(user)).idToken!)).sub, "ida")
      }).pipe(Effect.provide(userTokens({ keepIdToken: true }))))

    it.effect("the named user client answers a 401 with one forced refresh and one retry", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        yield* setup
        const { response, user } = yield* signIn("olga")
        yield* api.rejectNextValidTokens(1)
        const body = yield* echo(user)
        assert.strictEqual(body.sub, "olga")
        assert.strictEqual(yield* refreshes, 1)
        assertSameSecret(value((yield* stored(user)).accessToken!.accessToken), response.access_token, false)
        // a second rejection in a row reaches the caller as a 401
        yield* api.rejectNextValidTokens(2)
        const status = yield* Effect.flatMap(DemoApiClient, (client) => client.get("/data")).pipe(
          Effect.map((r) => r.status),
          Effect.scoped,
          CurrentUser.provide(user)
        )
        assert.strictEqual(status, 401)
        assert.strictEqual(yield* refreshes, 2)
      }).pipe(Effect.provide(demoApiClient), Effect.provide(userTokens())))

    it.effect("the typed user client needs CurrentUser in its context, and attaches that user's token", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        yield* setup
        const dave = yield* signIn("dave")
        const erin = yield* signIn("erin")
        const data = Effect.flatMap(TypedDemoApiClient, (client) => client.get("/data")).pipe(
          Effect.flatMap((response) => response.json),
          Effect.map((body) => (body as Record<string, unknown>).sub),
          Effect.scoped
        )
        // the requirement is in the type: without CurrentUser.provide this would not compile
        expectTypeOf(data).toEqualTypeOf<
          Effect.Effect<
            unknown,
            AccessTokenHttpClient.CurrentUserHttpClient extends HttpClient.HttpClient.With<infer E, any> ? E : never,
            TypedDemoApiClient | CurrentUser.CurrentUser
          >
        >()
        assert.strictEqual(yield* data.pipe(CurrentUser.provide(dave.user)), "dave")
        assert.strictEqual(yield* data.pipe(CurrentUser.provide(erin.user)), "erin")
        // a 401 renews the token of the user in the context, once
        yield* api.rejectNextValidTokens(1)
        assert.strictEqual(yield* data.pipe(CurrentUser.provide(erin.user)), "erin")
        assert.strictEqual(yield* refreshes, 1)
      }).pipe(Effect.provide(typedDemoApiClient), Effect.provide(userTokens())))

    it.effect("a seeded token's expiry counts from when the code exchange was sent, never from the future", () =>
      Effect.gen(function*() {
        const { events } = yield* setup
        const { response, user } = yield* signIn("grace")
        yield* TestClock.adjust("10 seconds")
        const now = yield* Clock.currentTimeMillis
        const lifetime = response.expires_in! * 1000
        // the answer took 10 s to come back: the token was issued up to 10 s before now
        yield* events.tokenValidated(user, response, undefined, { sentAt: now - 10_000 })
        assert.strictEqual((yield* stored(user)).accessToken!.expiresAt, now - 10_000 + lifetime)
        // a sending time after the answer is not believed
        yield* events.tokenValidated(user, response, undefined, { sentAt: now + 60_000 })
        assert.strictEqual((yield* stored(user)).accessToken!.expiresAt, now + lifetime)
      }).pipe(Effect.provide(userTokens())))

    it.effect("expiry (TestClock) → one refresh → the store holds the rotated refresh token, which works", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const { response, user } = yield* signIn("carol")
        yield* TestClock.adjust("241 seconds")
        const renewed = yield* tokens.get().pipe(CurrentUser.provide(user))
        assertSameSecret(value(renewed.accessToken), response.access_token, false)
        assert.strictEqual(yield* refreshes, 1)
        const after = yield* stored(user)
        assertSameSecret(value(after.refreshToken!), response.refresh_token!, false)
        assert.isFalse((yield* provider.introspect(response.refresh_token!)).active, "the old refresh token is used up")
        assert.isTrue((yield* provider.introspect(value(after.refreshToken!))).active)
        assert.strictEqual(claims(value(renewed.accessToken)).sub, "carol")
        // the rotated refresh token works
        yield* tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user))
        assert.strictEqual(yield* refreshes, 2)
      }).pipe(Effect.provide(userTokens())))

    for (
      const [name, store] of [
        ["the memory store", UserTokenStore.layerMemory()],
        [
          "a near cache over it",
          UserTokenStore.layerMemory().pipe(UserTokenStore.withNearCache(), Layer.provide(ClusterEvents.layerMemory))
        ]
      ] as const
    ) {
      it.effect(`${name}: a get served from memory gives way to expiry and to what another path writes or clears`, () =>
        Effect.gen(function*() {
          const { store, tokens } = yield* setup
          const { user } = yield* signIn("rita")
          // as a connection calls it: `yield*` of a plain get() under the provided user (and by the runtime in flip)
          yield* Effect.gen(function*() {
            const first = yield* tokens.get()
            assert.strictEqual(yield* tokens.get(), first)
            // past the renewal point: renewed, never the held token
            yield* TestClock.adjust("241 seconds")
            const renewed = yield* tokens.get()
            assert.notStrictEqual(value(renewed.accessToken), value(first.accessToken))
            assert.strictEqual(yield* refreshes, 1)
            assert.strictEqual(yield* tokens.get(), renewed)
            // another writer (another manager over the same store) replaces the access token
            const params = { resource: IdentityProvider.Resources.demoApi }
            yield* store.store(
              CurrentUser.storeKey(user),
              new UserToken.UserToken({
                ...(yield* stored(user)),
                accessToken: new AccessToken.AccessToken({
                  ...renewed,
                  accessToken: Redacted.make("written-elsewhere")
                })
              }),
              params
            )
            assert.strictEqual(value((yield* tokens.get()).accessToken), "written-elsewhere")
            // a sign-out elsewhere clears the store: nothing is handed out from memory any more
            yield* store.clear(CurrentUser.storeKey(user))
            const error = yield* Effect.flip(tokens.get())
            assert.strictEqual(error._tag, "SignInRequired")
            assert.strictEqual(yield* refreshes, 1)
          }).pipe(CurrentUser.provide(user))
        }).pipe(Effect.provide(userTokens({ store }))))
    }

    it.effect("500 concurrent calls for one expired user: one refresh, one new token, and the grant stays alive", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const { user } = yield* signIn("dave")
        yield* TestClock.adjust("301 seconds")
        const all = yield* Effect.all(Array.from({ length: 500 }, () => tokens.get()), {
          concurrency: "unbounded"
        }).pipe(CurrentUser.provide(user))
        assert.strictEqual(yield* refreshes, 1)
        assert.strictEqual(new Set(all.map((token) => value(token.accessToken))).size, 1)
        yield* tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user))
        assert.strictEqual(yield* refreshes, 2, "a later refresh succeeds: the grant was not revoked")
      }).pipe(Effect.provide(userTokens())))

    it.effect("without the single flight, the same 500 calls make the provider revoke the grant (the test detects it)", () =>
      Effect.gen(function*() {
        const { provider, store } = yield* setup
        const endpoint = yield* TokenEndpoint.TokenEndpoint
        const { user } = yield* signIn("erin")
        const client = {
          issuer: provider.issuer,
          clientId: "web",
          clientSecret: Redacted.make(IdentityProvider.Clients.web.clientSecret),
          authentication: "client_secret_basic" as const,
          allowInsecureRequests: false
        }
        // each caller refreshes on its own with the refresh token it read: what a cache without single flight does
        const naive = Effect.gen(function*() {
          const current = Option.getOrThrow(yield* store.get(CurrentUser.storeKey(user)))
          return yield* endpoint.request(
            client,
            TokenEndpoint.Grant.RefreshToken({ refreshToken: current.refreshToken! })
          )
        })
        const results = yield* Effect.all(Array.from({ length: 500 }, () => Effect.either(naive)), {
          concurrency: "unbounded"
        })
        const rejected = results.filter((r) => r._tag === "Left" && r.left._tag === "TokenRequestRejected")
        assert.isAbove(rejected.length, 0, "reused refresh tokens are rejected")
        const survivor = results.find((r) => r._tag === "Right")
        assert.isDefined(survivor)
        // reuse detection revoked the whole grant: even the newest refresh token is dead
        const newest = survivor!._tag === "Right" ? survivor!.right.refreshToken! : Redacted.make("")
        assert.isFalse((yield* provider.introspect(value(newest))).active)
      }).pipe(Effect.provide(userTokens())))

    it.effect(
      "200 users × 20 concurrent calls at expiry: 200 refreshes, and every call carries its own user's token",
      () =>
        Effect.gen(function*() {
          yield* setup
          const users = yield* Effect.all(
            Array.from(
              { length: 200 },
              (_, i) => Effect.map(signIn(`user-${i}`, { sessionId: `s-${i}` }), (l) => l.user)
            ),
            { concurrency: 8 }
          )
          yield* TestClock.adjust("301 seconds")
          const calls = users.flatMap((user) =>
            Array.from({ length: 20 }, () => Effect.map(echo(user), (body) => [user, body] as const))
          )
          const results = yield* Effect.all(calls, { concurrency: 400 })
          assert.strictEqual(yield* refreshes, 200)
          const mismatched = results.filter(([user, body]) => body.sub !== user.subject)
          assert.strictEqual(mismatched.length, 0)
          assert.strictEqual(results.length, 4000)
        }).pipe(Effect.provide(demoApiClient), Effect.provide(userTokens())),
      { timeout: 120_000 }
    )
  })

  describe("resources, refresh responses and failures", () => {
    it.effect("per-resource tokens of one user share (and rotate) one refresh token", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const { response, user } = yield* signIn("frank")
        const other = yield* tokens.get({ resource: IdentityProvider.Resources.otherApi }).pipe(
          CurrentUser.provide(user)
        )
        assert.strictEqual(claims(value(other.accessToken)).aud, IdentityProvider.Resources.otherApi)
        assert.strictEqual(other.resource, IdentityProvider.Resources.otherApi)
        const demo = yield* tokens.get().pipe(CurrentUser.provide(user))
        assertSameSecret(value(demo.accessToken), response.access_token, true, "stored demo-api token")
        const demoEntry = yield* stored(user)
        const otherEntry = yield* stored(user, { resource: IdentityProvider.Resources.otherApi })
        assertSameSecret(value(demoEntry.refreshToken!), value(otherEntry.refreshToken!))
        assertSameSecret(value(demoEntry.refreshToken!), response.refresh_token!, false)
        // both expire; refreshing both at once must not present a used refresh token
        yield* TestClock.adjust("301 seconds")
        yield* Effect.all([
          tokens.get(),
          tokens.get({ resource: IdentityProvider.Resources.otherApi }),
          tokens.get(),
          tokens.get({ resource: IdentityProvider.Resources.otherApi })
        ], { concurrency: "unbounded" }).pipe(CurrentUser.provide(user))
        assert.strictEqual(yield* refreshes, 3)
      }).pipe(Effect.provide(userTokens())))

    it.effect("a refresh response without a refresh token keeps the stored one", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const { response, user } = yield* signIn("grace")
        yield* TestClock.adjust("301 seconds")
        yield* tokens.get().pipe(CurrentUser.provide(user))
        assertSameSecret(value((yield* stored(user)).refreshToken!), response.refresh_token!)
        assert.strictEqual(yield* refreshes, 1)
      }).pipe(
        // a provider that does not rotate: the refresh response carries no refresh token
        Effect.provide(Layer.unwrapEffect(Effect.map(IdentityProvider.IdentityProvider, (provider) =>
          UserTokens.layer({
            client: {
              issuer: provider.issuer,
              clientId: "web",
              clientSecret: Redacted.make(IdentityProvider.Clients.web.clientSecret)
            },
            resource: IdentityProvider.Resources.demoApi
          }).pipe(
            Layer.provideMerge(UserTokenStore.layerMemory()),
            Layer.provide(TokenLock.layerMemory),
            Layer.provideMerge(Layer.effect(
              TokenEndpoint.TokenEndpoint,
              Effect.map(TokenEndpoint.make({ timeout: "2 seconds" }), (endpoint) => ({
                ...endpoint,
                request: (client, grant) =>
                  Effect.map(endpoint.request(client, grant), ({ accessToken }) => ({ accessToken }))
              }))
            )),
            Layer.orDie
          ))))
      ))

    it.effect("invalid_grant clears the user's tokens and fails with SignInRequired", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const { response, user } = yield* signIn("heidi")
        const endpoint = yield* TokenEndpoint.TokenEndpoint
        yield* endpoint.revoke(
          {
            issuer: provider.issuer,
            clientId: "web",
            clientSecret: Redacted.make(IdentityProvider.Clients.web.clientSecret),
            authentication: "client_secret_basic",
            allowInsecureRequests: false
          },
          Redacted.make(response.refresh_token!),
          "refresh_token"
        )
        yield* TestClock.adjust("301 seconds")
        const error = yield* Effect.flip(tokens.get().pipe(CurrentUser.provide(user)))
        assert.strictEqual(error._tag, "SignInRequired")
        if (error._tag === "SignInRequired") assert.strictEqual(error.reason, "refresh-token-rejected")
        assert.include(error.message, `User "heidi" must sign in again`)
        const store = yield* UserTokenStore.UserTokenStore
        assert.isTrue(Option.isNone(yield* store.get(CurrentUser.storeKey(user))))
      }).pipe(Effect.provide(userTokens())))

    it.effect("the provider down during refresh: a typed error, the tokens kept, and the next call succeeds", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const { response, user } = yield* signIn("ivan")
        yield* TestClock.adjust("301 seconds")
        yield* provider.setTokenFault({ _tag: "ServerError", status: 503 }, { times: 1 })
        const error = yield* Effect.flip(tokens.get().pipe(CurrentUser.provide(user)))
        assert.strictEqual(error._tag, "TokenEndpointUnavailable")
        assertSameSecret(value((yield* stored(user)).refreshToken!), response.refresh_token!)
        yield* TestClock.adjust("1 second") // the backoff window after a transient failure
        const token = yield* tokens.get().pipe(CurrentUser.provide(user))
        assert.strictEqual(claims(value(token.accessToken)).sub, "ivan")
      }).pipe(Effect.provide(userTokens())))

    it.effect("an expired token is never handed out, even when the refresh fails", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const { user } = yield* signIn("judy")
        yield* TestClock.adjust("300 seconds")
        yield* provider.setTokenFault({ _tag: "NonJson" }, { times: 1 })
        const error = yield* Effect.flip(tokens.get().pipe(CurrentUser.provide(user)))
        assert.strictEqual(error._tag, "InvalidTokenResponse")
      }).pipe(Effect.provide(userTokens())))

    it.effect("no current user, and a user with no tokens, fail typed", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const noUser = yield* Effect.flip(tokens.get())
        assert.strictEqual(noUser._tag, "NoCurrentUser")
        assert.include(noUser.message, "CurrentUser")
        const stranger = new CurrentUser.User({ subject: "mallory" })
        const noTokens = yield* Effect.flip(tokens.get().pipe(CurrentUser.provide(stranger)))
        assert.strictEqual(noTokens._tag === "SignInRequired" && noTokens.reason, "no-tokens")
      }).pipe(Effect.provide(userTokens())))
  })

  describe("signing out and revocation", () => {
    it.effect("signingOut revokes the refresh token at the provider and clears the store", () =>
      Effect.gen(function*() {
        const { events, provider, store } = yield* setup
        const { user } = yield* signIn("ken")
        const refreshToken = value((yield* stored(user)).refreshToken!)
        assert.isTrue((yield* provider.introspect(refreshToken)).active)
        yield* events.signingOut(user)
        assert.isFalse((yield* provider.introspect(refreshToken)).active)
        assert.isTrue(Option.isNone(yield* store.get(CurrentUser.storeKey(user))))
      }).pipe(Effect.provide(userTokens())))

    it.effect("signing out while a refresh is in flight: sign-out waits, then revokes the rotated token and clears", () =>
      Effect.gen(function*() {
        const { events, provider, store, tokens } = yield* setup
        const { user } = yield* signIn("oscar")
        yield* TestClock.adjust("301 seconds")
        yield* gate.arm
        const refreshing = yield* Effect.fork(tokens.get().pipe(CurrentUser.provide(user)))
        const written = yield* gate.reached // the provider answered; the refresh is about to write
        const signingOut = yield* Effect.fork(events.signingOut(user))
        // give sign-out (real) time to run as far as it can: it must wait for the refresh, not race it
        const early = yield* Fiber.await(signingOut).pipe(Effect.timeoutOption("300 millis"), TestServices.provideLive)
        assert.isTrue(Option.isNone(early), "sign-out waits for the refresh in flight")
        yield* gate.open
        yield* Fiber.join(refreshing)
        yield* Fiber.join(signingOut)
        assert.isTrue(Option.isNone(yield* store.get(CurrentUser.storeKey(user))), "nothing is left in the store")
        assert.isFalse(
          (yield* provider.introspect(value(written.refreshToken!))).active,
          "the rotated token is revoked"
        )
      }).pipe(Effect.provide(userTokens({ store: gatedStore }))))

    it.effect("two sessions of one user are independent: signing out of one leaves the other working", () =>
      Effect.gen(function*() {
        const { events, tokens } = yield* setup
        const laptop = yield* signIn("lena", { sessionId: "laptop" })
        const phone = yield* signIn("lena", { sessionId: "phone" })
        yield* events.signingOut(laptop.user)
        yield* TestClock.adjust("301 seconds")
        const token = yield* tokens.get().pipe(CurrentUser.provide(phone.user))
        assert.strictEqual(claims(value(token.accessToken)).sub, "lena")
        const error = yield* Effect.flip(tokens.get().pipe(CurrentUser.provide(laptop.user)))
        assert.strictEqual(error._tag, "SignInRequired")
      }).pipe(Effect.provide(userTokens())))

    it.effect("revokeRefreshToken revokes the current user's refresh token", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const { response, user } = yield* signIn("mike")
        yield* tokens.revokeRefreshToken.pipe(CurrentUser.provide(user))
        assert.isFalse((yield* provider.introspect(response.refresh_token!)).active)
      }).pipe(Effect.provide(userTokens())))
  })

  describe("the app's own token and secrecy", () => {
    it.effect("the app's client-credentials token comes from the OIDC client configuration", () =>
      Effect.gen(function*() {
        yield* setup
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const token = yield* tokens.get(AccessTokenManagement.appClient)
        const jwt = claims(value(token.accessToken))
        assert.strictEqual(jwt.client_id, "web")
        assert.strictEqual(jwt.aud, IdentityProvider.Resources.demoApi)
        assert.strictEqual(jwt.scope, "api.read")
      }).pipe(Effect.provide(userTokens({ appScope: "api.read" }))))

    it.effect("no user token, refresh token or ID token appears in logs or errors", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const { response, user } = yield* signIn("nina")
        const { exit, lines } = yield* captureLogs(Effect.gen(function*() {
          yield* TestClock.adjust("301 seconds")
          yield* provider.setTokenFault({ _tag: "ServerError", status: 502 }, { times: 1 })
          const error = yield* Effect.flip(tokens.get().pipe(CurrentUser.provide(user)))
          yield* Effect.logError("refresh failed", error)
          yield* TestClock.adjust("1 second") // the backoff window after a transient failure
          const token = yield* tokens.get().pipe(CurrentUser.provide(user))
          const entry = yield* stored(user)
          yield* Effect.log("refreshed", token, entry)
          return [error, token, entry] as const
        }))
        assert.strictEqual(exit._tag, "Success")
        if (exit._tag !== "Success") return
        const [error, token, entry] = exit.value
        assertNoSecrets(
          [...lines, ...renderings(error), ...renderings(token), ...renderings(entry), ...renderings(user)],
          [
            response.access_token,
            response.refresh_token!,
            response.id_token!,
            value(token.accessToken),
            value(entry.refreshToken!),
            IdentityProvider.Clients.web.clientSecret
          ]
        )
      }).pipe(Effect.provide(userTokens())))
  })
})
