/**
 * The write after a refresh holds the only copy of the rotated refresh token: a store failing for a moment (a Redis
 * restart, found by the chaos soak) must not cost the user's grant.
 */
import { CurrentUser, TokenError, UserTokens, UserTokenStore } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { identity, userTokens } from "../../../test/support/environment.js"
import { signIn } from "../../../test/support/login.js"

/** A memory store whose next `failures` writes fail (transiently or not), counting every write attempt. */
const flaky = (() => {
  let failures = 0
  let transient = true
  let attempts = 0
  return {
    fail: (n: number, options: { readonly transient: boolean }) =>
      Effect.sync(() => {
        failures = n
        transient = options.transient
        attempts = 0
      }),
    attempts: Effect.sync(() => attempts),
    layer: Layer.sync(UserTokenStore.UserTokenStore, () => {
      failures = 0 // a store of its own per test: what a failed test left armed does not leak into the next
      const memory = UserTokenStore.makeMemory()
      return {
        ...memory,
        store: (user, token, params) =>
          Effect.suspend(() => {
            attempts++
            if (failures === 0) return memory.store(user, token, params)
            failures--
            return Effect.fail(
              new TokenError.TokenStoreError({
                store: "flaky",
                operation: "store",
                reason: "connection lost",
                transient
              })
            )
          })
      }
    })
  }
})()

const storedRefreshToken = (user: CurrentUser.User) =>
  Effect.flatMap(UserTokenStore.UserTokenStore, (store) => store.get(CurrentUser.storeKey(user))).pipe(
    Effect.map((found) => Redacted.value(Option.getOrThrow(found).refreshToken!))
  )

layer(identity({ accessTokenTtl: 300 }), { excludeTestServices: true })(
  "the write of a rotated refresh token",
  (it) => {
    it.effect("a store failing for a moment after the provider rotated: the write is retried, the grant kept", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const tokens = yield* UserTokens.UserTokens
        const { response, user } = yield* signIn("store-blip")
        yield* flaky.fail(3, { transient: true })
        yield* tokens.getFor(user, { forceRenewal: true })
        assert.strictEqual(yield* flaky.attempts, 4, "three failed writes, then the one that went through")
        const rotated = yield* storedRefreshToken(user)
        assert.notStrictEqual(rotated, response.refresh_token)
        assert.isFalse((yield* provider.introspect(response.refresh_token!)).active, "the provider spent the old one")
        assert.isTrue((yield* provider.introspect(rotated)).active, "the rotated one was kept")
        yield* tokens.getFor(user, { forceRenewal: true }) // and it works
      }).pipe(Effect.provide(userTokens({ store: flaky.layer }))))

    it.effect("a store that cannot take the write (not transient): the error at once, no retry", () =>
      Effect.gen(function*() {
        const tokens = yield* UserTokens.UserTokens
        const { user } = yield* signIn("store-broken")
        yield* flaky.fail(1, { transient: false })
        const result = yield* Effect.either(tokens.getFor(user, { forceRenewal: true }))
        assert.isTrue(Either.isLeft(result) && result.left._tag === "TokenStoreError")
        assert.strictEqual(yield* flaky.attempts, 1)
      }).pipe(Effect.provide(userTokens({ store: flaky.layer }))))
  }
)
