import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { AccessToken } from "../src/AccessToken.js"
import * as TokenCache from "../src/TokenCache.js"

/** A backend over a Map whose renewals are counted and can be held open or made to fail. */
const makeBackend = (options: {
  readonly lifetimeMillis?: number
  readonly gate?: Deferred.Deferred<void>
  readonly fail?: { current: boolean }
} = {}) => {
  const values = new Map<string, AccessToken>()
  const renewals: Array<string> = []
  let serial = 0
  const backend: TokenCache.Backend<string, AccessToken, string> = {
    keyOf: (key) => key,
    lockKeyOf: (key) => key.split("/")[0]!,
    read: (key) => Effect.sync(() => Option.fromNullable(values.get(key))),
    accessToken: (token) => token,
    renew: (key) =>
      Effect.gen(function*() {
        renewals.push(key)
        if (options.gate) yield* Deferred.await(options.gate)
        if (options.fail?.current) return yield* Effect.fail("renewal failed")
        const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        const token = new AccessToken({
          accessToken: Redacted.make(`${key}#${++serial}`),
          tokenType: "Bearer",
          issuedAt: now,
          expiresAt: now + (options.lifetimeMillis ?? 300_000)
        })
        values.set(key, token)
        return token
      })
  }
  return { backend, values, renewals }
}

const value = (token: AccessToken) => Redacted.value(token.accessToken)

describe("TokenCache", () => {
  it.scoped("one renewal for 1,000 concurrent callers of a cold key", () =>
    Effect.gen(function*() {
      const { backend, renewals } = makeBackend()
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds" })
      const tokens = yield* Effect.all(Array.from({ length: 1000 }, () => cache.get("a")), { concurrency: "unbounded" })
      assert.strictEqual(renewals.length, 1)
      assert.strictEqual(new Set(tokens.map(value)).size, 1)
      assert.strictEqual(yield* cache.inFlight, 0)
    }))

  it.scoped("a fresh token is reused; it is renewed within the buffer, and never handed out expired", () =>
    Effect.gen(function*() {
      const { backend, renewals } = makeBackend({ lifetimeMillis: 300_000 })
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds" })
      const first = yield* cache.get("a")
      yield* TestClock.adjust("239 seconds")
      assert.strictEqual(value(yield* cache.get("a")), value(first))
      yield* TestClock.adjust("1 second") // 60 s before expiry
      const second = yield* cache.get("a")
      assert.notStrictEqual(value(second), value(first))
      assert.strictEqual(renewals.length, 2)
    }))

  it.scoped("memoized: a get made once and run later, with yield* or by the runtime, follows the clock of when it runs", () =>
    Effect.gen(function*() {
      const { backend, renewals } = makeBackend({ lifetimeMillis: 300_000 })
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds", memoize: true })
      const get = cache.get("a")
      const first = yield* get
      yield* TestClock.adjust("239 seconds")
      assert.strictEqual(value(yield* get), value(first))
      assert.strictEqual(value(yield* Effect.map(get, (token) => token)), value(first))
      yield* TestClock.adjust("1 second") // 60 s before expiry: `yield*` must not take the memo's stale entry
      const second = yield* get
      assert.notStrictEqual(value(second), value(first))
      assert.strictEqual(value(yield* Effect.map(get, (token) => token)), value(second))
      assert.strictEqual(renewals.length, 2)
    }))

  it.scoped("the renewal buffer is capped at half the lifetime of a short-lived token", () =>
    Effect.gen(function*() {
      const { backend, renewals } = makeBackend({ lifetimeMillis: 10_000 })
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds" })
      const first = yield* cache.get("a")
      yield* TestClock.adjust("4999 millis")
      assert.strictEqual(value(yield* cache.get("a")), value(first))
      assert.strictEqual(renewals.length, 1)
      yield* TestClock.adjust("1 millis")
      assert.notStrictEqual(value(yield* cache.get("a")), value(first))
    }))

  it.scoped("failures are not cached: the next call renews again", () =>
    Effect.gen(function*() {
      const fail = { current: true }
      const { backend, renewals } = makeBackend({ fail })
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds" })
      const failures = yield* Effect.all(Array.from({ length: 10 }, () => Effect.flip(cache.get("a"))), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(failures, Array(10).fill("renewal failed"))
      assert.strictEqual(renewals.length, 1)
      fail.current = false
      yield* cache.get("a")
      assert.strictEqual(renewals.length, 2)
    }))

  it.scoped("an interrupted first caller does not interrupt the renewal the others wait for", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { backend, renewals } = makeBackend({ gate })
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds" })
      const first = yield* Effect.fork(cache.get("a"))
      yield* Effect.yieldNow()
      const others = yield* Effect.fork(Effect.all(Array.from({ length: 5 }, () => cache.get("a")), { concurrency: 5 }))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      yield* Deferred.succeed(gate, void 0)
      const tokens = yield* Fiber.join(others)
      assert.strictEqual(tokens.length, 5)
      assert.strictEqual(renewals.length, 1)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(first)))
    }))

  it.scoped("waiters interrupted while a renewal hangs leave the others waiting; all that stay get its token", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { backend, renewals } = makeBackend({ gate })
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds" })
      const parked = (fibers: ReadonlyArray<Fiber.RuntimeFiber<AccessToken, unknown>>) =>
        Effect.gen(function*() {
          while (true) {
            const statuses = yield* Effect.forEach(fibers, Fiber.status)
            if (statuses.every((status) => status._tag === "Suspended")) return
            yield* Effect.yieldNow()
          }
        })
      // enough waiters, interrupted in the middle of the list, for the list to be pruned as more join
      const first = yield* Effect.forEach(Array.from({ length: 200 }), () => Effect.fork(cache.get("a")))
      yield* parked(first)
      const interrupted = first.filter((_, i) => i % 2 === 1)
      yield* Effect.forEach(interrupted, Fiber.interrupt)
      const later = yield* Effect.forEach(Array.from({ length: 300 }), () => Effect.fork(cache.get("a")))
      yield* parked(later)
      yield* Deferred.succeed(gate, void 0)
      const tokens = yield* Effect.forEach([...first.filter((_, i) => i % 2 === 0), ...later], Fiber.join)
      assert.strictEqual(new Set(tokens.map(value)).size, 1, "one token for the 400 callers that stayed")
      assert.strictEqual(renewals.length, 1)
      for (const fiber of interrupted) assert.isTrue(Exit.isInterrupted(yield* Fiber.await(fiber)))
      assert.strictEqual(yield* cache.inFlight, 0)
    }))

  it.scoped("different keys never wait on each other", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const held = makeBackend({ gate })
      const free = makeBackend()
      const backend: TokenCache.Backend<string, AccessToken, string> = {
        ...free.backend,
        lockKeyOf: (key) => key,
        renew: (key, current) => key === "held" ? held.backend.renew(key, current) : free.backend.renew(key, current)
      }
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds" })
      const blocked = yield* Effect.fork(cache.get("held"))
      yield* Effect.yieldNow()
      const other = yield* cache.get("other")
      assert.strictEqual(value(other), "other#1")
      assert.isNull(yield* Fiber.poll(blocked).pipe(Effect.map(Option.getOrNull)))
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(blocked)
    }))

  it.scoped("renewals that share a lock key run one after the other, and the second re-reads first", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { backend, renewals, values } = makeBackend({ gate })
      let concurrent = 0
      let maxConcurrent = 0
      const counting: TokenCache.Backend<string, AccessToken, string> = {
        ...backend,
        renew: (key, current) =>
          Effect.acquireUseRelease(
            Effect.sync(() => maxConcurrent = Math.max(maxConcurrent, ++concurrent)),
            () => backend.renew(key, current),
            () => Effect.sync(() => concurrent--)
          )
      }
      const cache = yield* TokenCache.make(counting, { renewBefore: "60 seconds" })
      const both = yield* Effect.fork(
        Effect.all([cache.get("alice/api"), cache.get("alice/other")], { concurrency: 2 })
      )
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(both)
      assert.strictEqual(maxConcurrent, 1)
      assert.deepStrictEqual(renewals.sort(), ["alice/api", "alice/other"])
      assert.strictEqual(values.size, 2)
    }))

  it.scoped("renew with a rejected token renews once; a token already replaced is returned without renewal", () =>
    Effect.gen(function*() {
      const { backend, renewals } = makeBackend()
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds" })
      const first = yield* cache.get("a")
      const results = yield* Effect.all(Array.from({ length: 50 }, () => cache.renew("a", first)), {
        concurrency: "unbounded"
      })
      assert.strictEqual(renewals.length, 2)
      assert.strictEqual(new Set(results.map(value)).size, 1)
      assert.notStrictEqual(value(results[0]!), value(first))
      // a late 401 for the first token: it was replaced already
      const late = yield* cache.renew("a", first)
      assert.strictEqual(value(late), value(results[0]!))
      assert.strictEqual(renewals.length, 2)
      // a forced renewal without a rejected token renews whatever is current
      const forced = yield* cache.renew("a")
      assert.notStrictEqual(value(forced), value(late))
      assert.strictEqual(renewals.length, 3)
    }))
})
