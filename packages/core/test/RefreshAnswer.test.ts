import { CurrentUser, TokenError, UserTokens, UserTokenStore } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as TestServices from "effect/TestServices"
import { identity, userTokens } from "../../../test/support/environment.js"
import { signIn } from "../../../test/support/login.js"

// The endpoint's timeout and the answer's bound run on the TestClock; only the provider's late answer is real time.
const manager = userTokens({ endpoint: { timeout: "2 seconds" }, refreshAnswerTimeout: "30 seconds" })

const refreshes = Effect.flatMap(
  IdentityProvider.IdentityProvider,
  (provider) => provider.tokenRequests({ grantType: "refresh_token" })
)

const storedRefreshToken = (user: CurrentUser.User) =>
  Effect.flatMap(UserTokenStore.UserTokenStore, (store) => store.get(CurrentUser.storeKey(user))).pipe(
    Effect.map((token) => Redacted.value(Option.getOrThrow(token).refreshToken!))
  )

/** Waits (real time, generously) until `done` holds; whether it did is the test's to assert. */
const eventually = <E, R>(done: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 400; attempt++) {
      if (yield* done) return true
      yield* Effect.sleep("25 millis").pipe(TestServices.provideLive)
    }
    return false
  })

layer(identity({ accessTokenTtl: 300 }))("a refresh answered after the endpoint's timeout", (it) => {
  describe("within refreshAnswerTimeout", () => {
    it.effect("callers get the still-valid token at the timeout; the late answer's rotated refresh token is stored", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const tokens = yield* UserTokens.UserTokens
        yield* provider.resetCounters
        const { response, user } = yield* signIn("dora")
        const spent = response.refresh_token!
        // inside the renewal window (60 s before expiry), not expired: the held token is served while renewal fails
        yield* TestClock.adjust("250 seconds")
        // the provider handles the refresh (rotating the refresh token) at once, and answers 1.5 s (real) later
        yield* provider.setTokenFault({ _tag: "LateAnswer", millis: 1500 }, { times: 1 })
        const interrupted = yield* Effect.fork(tokens.get().pipe(CurrentUser.provide(user)))
        const caller = yield* Effect.fork(tokens.get().pipe(CurrentUser.provide(user)))
        assert.isTrue(yield* eventually(Effect.map(refreshes, (n) => n === 1)), "the refresh reached the provider")
        // a caller going away does not take the refresh with it
        yield* Fiber.interrupt(interrupted)
        // the endpoint's timeout passes: the waiting caller is released with the still-valid token
        yield* TestClock.adjust("2 seconds")
        const served = yield* Fiber.join(caller)
        assert.strictEqual(Redacted.value(served.accessToken), response.access_token)
        // while the answer is awaited, calls get the held token at once and send no second refresh
        const again = yield* tokens.get().pipe(CurrentUser.provide(user))
        assert.strictEqual(Redacted.value(again.accessToken), response.access_token)
        // the late answer arrives and is stored
        const answered = yield* eventually(Effect.map(storedRefreshToken(user), (stored) => stored !== spent))
        // past any backoff window: had the answer been abandoned, the refresh below would present the spent token
        yield* TestClock.adjust("2 seconds")
        const fresh = yield* tokens.get().pipe(CurrentUser.provide(user))
        // the next refresh presents the stored refresh token: the provider revokes the grant if it is the spent one
        const renewed = yield* tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user))
        assert.isTrue(answered, "the rotated refresh token of the late answer is stored")
        assert.notStrictEqual(Redacted.value(fresh.accessToken), response.access_token, "the late answer's token")
        assert.notStrictEqual(Redacted.value(renewed.accessToken), Redacted.value(fresh.accessToken))
        assert.strictEqual(yield* refreshes, 2)
        assert.isFalse((yield* provider.introspect(spent)).active, "the provider spent the first refresh token")
        assert.isTrue((yield* provider.introspect(yield* storedRefreshToken(user))).active, "the grant is active")
      }).pipe(Effect.provide(manager)))

    it.effect("a forced renewal's caller gets TokenEndpointTimeout at the timeout; the answer is still stored", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const tokens = yield* UserTokens.UserTokens
        yield* provider.resetCounters
        const { response, user } = yield* signIn("erin")
        const spent = response.refresh_token!
        yield* provider.setTokenFault({ _tag: "LateAnswer", millis: 1500 }, { times: 1 })
        const caller = yield* Effect.fork(tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user)))
        assert.isTrue(yield* eventually(Effect.map(refreshes, (n) => n === 1)))
        yield* TestClock.adjust("2 seconds")
        const error = yield* Fiber.join(caller).pipe(Effect.flip)
        assert.strictEqual(error._tag, "TokenEndpointTimeout")
        assert.isTrue(TokenError.isTransient(error as TokenError.TokenEndpointError))
        // a renewal asked for meanwhile fails at once with that error, rather than refreshing with a spent token
        const meanwhile = yield* tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user), Effect.either)
        assert.isTrue(Either.isLeft(meanwhile) && meanwhile.left === error)
        const answered = yield* eventually(Effect.map(storedRefreshToken(user), (stored) => stored !== spent))
        yield* TestClock.adjust("2 seconds")
        yield* tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user))
        assert.isTrue(answered)
        assert.strictEqual(yield* refreshes, 2)
        assert.isTrue((yield* provider.introspect(yield* storedRefreshToken(user))).active, "the grant is active")
      }).pipe(Effect.provide(manager)))
  })

  it.effect("an answer later than refreshAnswerTimeout is abandoned, and the key is usable again", () =>
    Effect.gen(function*() {
      const provider = yield* IdentityProvider.IdentityProvider
      const tokens = yield* UserTokens.UserTokens
      yield* provider.resetCounters
      const { user } = yield* signIn("fay")
      yield* provider.setTokenFault({ _tag: "LateAnswer", millis: 5000 }, { times: 1 })
      const caller = yield* Effect.fork(tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user)))
      assert.isTrue(yield* eventually(Effect.map(refreshes, (n) => n === 1)))
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* Fiber.join(caller).pipe(Effect.flip))._tag, "TokenEndpointTimeout")
      // the hard bound passes before the answer: the request is aborted and ends its renewal
      yield* TestClock.adjust("28 seconds")
      // once the aborted renewal has ended (and its backoff window passed), a renewal is asked for again: with the
      // spent refresh token, so the provider refuses it — the bound is where an answer is given up
      let outcome: string | undefined
      for (let attempt = 0; attempt < 200 && outcome === undefined; attempt++) {
        yield* TestClock.adjust("2 seconds")
        const next = yield* tokens.get({ forceRenewal: true }).pipe(CurrentUser.provide(user), Effect.either)
        if (Either.isLeft(next) && next.left._tag === "TokenEndpointTimeout") {
          yield* Effect.sleep("25 millis").pipe(TestServices.provideLive)
        } else {
          outcome = Either.isLeft(next) ? next.left._tag : "success"
        }
      }
      assert.strictEqual(outcome, "SignInRequired")
      assert.strictEqual(yield* refreshes, 2)
    }).pipe(Effect.provide(manager)))
})
