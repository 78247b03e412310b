/**
 * Fencing as the core sees it: the memory lock's leases, and a renewal whose lease is lost (a lock of the test's
 * whose leases it can take away) that neither asks for a new token nor writes one.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { AccessToken } from "../src/AccessToken.js"
import * as TokenCache from "../src/TokenCache.js"
import * as TokenLock from "../src/TokenLock.js"
import { UserToken } from "../src/UserToken.js"
import * as UserTokenStore from "../src/UserTokenStore.js"

/** A distributed lock in one process whose current leases the test can take away, as a stall past a lease would. */
const makeLosableLock = () => {
  const held = new Set<object>()
  let fencingTokens = 0
  const lock = TokenLock.TokenLock.of({
    distributed: true,
    withLock: (key) => (effect) =>
      Effect.suspend(() => {
        const marker = {}
        held.add(marker)
        const lease: TokenLock.Lease = {
          key,
          fencingToken: ++fencingTokens,
          acquiredAt: 0,
          ensureHeld: Effect.suspend(() =>
            held.has(marker) ? Effect.void : Effect.fail(TokenLock.leaseLost({ store: "test", reason: "taken away" }))
          )
        }
        return Effect.ensuring(
          Effect.provideService(effect, TokenLock.CurrentLease, Option.some(lease)),
          Effect.sync(() => held.delete(marker))
        )
      })
  })
  return { lock, loseAll: Effect.sync(() => held.clear()) }
}

const token = (value: string) =>
  new AccessToken({ accessToken: Redacted.make(value), tokenType: "Bearer", issuedAt: 0, expiresAt: 60_000 })

describe("fenced renewal", () => {
  it.effect("the memory lock hands each holder a lease that is always held, with a growing fencing token", () =>
    Effect.gen(function*() {
      const lease = TokenLock.memory.withLock("k")(Effect.map(TokenLock.CurrentLease, Option.getOrThrow))
      const first = yield* lease
      const second = yield* lease
      assert.strictEqual(first.key, "k")
      assert.isAbove(second.fencingToken, first.fencingToken)
      yield* first.ensureHeld
      assert.isTrue(Option.isNone(yield* TokenLock.CurrentLease), "no lease outside the lock")
    }))

  it.scoped("a renewal that lost its lease after re-reading the store stops before it renews or writes", () =>
    Effect.gen(function*() {
      const { lock, loseAll } = makeLosableLock()
      const store = UserTokenStore.makeMemory()
      const reading = yield* Deferred.make<void>()
      const resume = yield* Deferred.make<void>()
      let renewals = 0
      const cache = yield* TokenCache.make<string, AccessToken, never>({
        keyOf: (key) => key,
        // the re-read inside the lock stalls until the test resumes it (the stall of a holder past its lease)
        read: (key) =>
          Effect.gen(function*() {
            if (Option.isSome(yield* TokenLock.CurrentLease)) {
              yield* Deferred.succeed(reading, undefined)
              yield* Deferred.await(resume)
            }
            return Option.flatMapNullable(yield* Effect.orDie(store.get(key)), (stored) => stored.accessToken)
          }),
        accessToken: (value) => value,
        renew: (key) =>
          Effect.sync(() => ++renewals).pipe(
            Effect.map(() => token(`renewed-${renewals}`)),
            Effect.tap((renewed) =>
              Effect.orDie(store.store(key, new UserToken({ clientId: "c", accessToken: renewed })))
            )
          )
      }, { renewBefore: "1 second", lock, backoff: false })

      const renewal = yield* Effect.fork(cache.get("user"))
      yield* Deferred.await(reading)
      yield* loseAll
      yield* Deferred.succeed(resume, undefined)
      const failure = yield* Effect.flip(Fiber.join(renewal))
      if (!TokenLock.isLeaseLost(failure)) return assert.fail(`failed with ${String(failure)}`)
      assert.isTrue(failure.transient, "transient: the caller may try again")
      assert.include(failure.message, "nothing was written")
      assert.strictEqual(renewals, 0, "no token was requested under a lost lease")
      assert.isTrue(Option.isNone(yield* store.get("user")), "nothing was written")
    }))

  it.effect("the memory store refuses a write, and a clear, under a lost lease; without a lease it writes", () =>
    Effect.gen(function*() {
      const { lock, loseAll } = makeLosableLock()
      const store = UserTokenStore.makeMemory()
      const write = (value: string) => store.store("user", new UserToken({ clientId: "c", accessToken: token(value) }))
      yield* write("first")
      const [refused, cleared] = yield* lock.withLock("user")(
        Effect.zipRight(loseAll, Effect.all([Effect.flip(write("second")), Effect.flip(store.clear("user"))]))
      )
      assert.isTrue(TokenLock.isLeaseLost(refused) && TokenLock.isLeaseLost(cleared))
      const stored = Option.getOrThrow(yield* store.get("user"))
      assert.strictEqual(Redacted.value(stored.accessToken!.accessToken), "first", "the store kept the first write")
    }))
})
