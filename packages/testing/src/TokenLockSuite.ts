/**
 * The conformance suite every `TokenLock` passes, for your own lock in your own vitest: one holder at a time per key,
 * different keys never wait for each other, the lock is released however the effect ends (success, failure,
 * defect, interruption), a waiter interrupted while waiting leaves nothing behind, and the effect's value and errors
 * pass through unchanged. Fencing: the effect runs with its `TokenLock.CurrentLease`, whose fencing token grows
 * with every acquisition of the key; with `loseLease`, a lease the backend no longer has is detected and fences
 * the writes made under it.
 *
 * A lock on a real backend waits by polling on the `Clock`: the suite runs on the live clock (no `TestClock`), and
 * coordinates its fibers with `Deferred`s. Time appears only in bounds that a correct lock meets with room to spare
 * on a loaded machine: an acquirer of a free lock gets it within `acquireWithin`, and a waiter is watched for
 * 200 milliseconds to see that it stays out while the lock is held.
 *
 * @since 0.2.0
 */
import * as TokenLock from "@effect-atm/core/TokenLock"
import { assert, layer as vitestLayer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { unique, withTimeout } from "./internal/suite.js"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /**
   * How soon an acquirer must get a lock nobody holds (or that was just released). Keep it below your lock's lease
   * time, if it has one: a lock that is not released but runs out after its lease must still fail the suite.
   * Default: 5 seconds.
   */
  readonly acquireWithin?: Duration.DurationInput | undefined
  /** How many fibers contend for one key in the mutual exclusion test. Default: 20. */
  readonly fibers?: number | undefined
  /** How long each test, and building or releasing the layer, may take. Default: 60 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * Makes the backend forget the lease held for `key`, as when it ran out while its holder stalled (for Redis:
   * delete the lock key). With it, the suite checks that the holder then finds its lease lost and that a fenced
   * write under it does not run; without it, that test is skipped (a lock whose leases cannot be lost, such as
   * `TokenLock.layerMemory`, has nothing to check).
   *
   * @since 0.3.0
   */
  readonly loseLease?: ((key: string) => Effect.Effect<void>) | undefined
}

/**
 * A lock key no other test (or run) uses, shaped like a user's key (`<subject>\u001e<session>`).
 *
 * @since 0.2.0
 * @category helpers
 */
export const uniqueKey = (label: string): string => `${unique(label)}\u001esession`

/** How long a waiter is watched to see that it stays out while the lock is held. */
const exclusionWindow = Duration.millis(200)

class ExpectedFailure extends Data.TaggedError("ExpectedFailure")<{ readonly key: string }> {}

class CallerService extends Context.Tag("@effect-atm/testing/TokenLockSuite/CallerService")<CallerService, {
  readonly name: string
}>() {}

/**
 * Registers the suite over the lock `layer` builds: a `describe` block named after the lock, a test per rule, one
 * lock for all of them. Keys are unique per test and run, so the lock's backend may be shared.
 *
 * @example
 * ```ts
 * // test/MyTokenLock.test.ts
 * import type { TokenLock } from "@effect-atm/core"
 * import { TokenLockSuite } from "@effect-atm/testing"
 * import type { Layer } from "effect"
 *
 * declare const MyLockLive: Layer.Layer<TokenLock.TokenLock> // your lock's layer
 *
 * TokenLockSuite.run("MyTokenLock", MyLockLive, { acquireWithin: "2 seconds" })
 * ```
 *
 * @since 0.2.0
 * @category suites
 */
export const run = <E>(name: string, layer: Layer.Layer<TokenLock.TokenLock, E>, options: Options = {}): void => {
  const timeout = Duration.toMillis(Duration.decode(options.timeout ?? Duration.seconds(60)))
  const acquireWithin = Duration.decode(options.acquireWithin ?? Duration.seconds(5))
  const fibers = options.fibers ?? 20

  /** Runs `effect`, which a correct lock lets through at once, failing the test with `failure` if it does not. */
  const promptly = <A, E1, R>(effect: Effect.Effect<A, E1, R>, failure: string) =>
    Effect.timeoutOption(effect, acquireWithin).pipe(
      Effect.map(Option.getOrElse(() => assert.fail(`${failure} (waited ${Duration.format(acquireWithin)})`)))
    )

  /** Holds the lock for `key` in a fiber of its own until `release` completes; returns once the lock is held. */
  const hold = (lock: TokenLock.TokenLock["Type"], key: string) =>
    Effect.gen(function*() {
      const entered = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        lock.withLock(key)(Effect.zipRight(Deferred.succeed(entered, undefined), Deferred.await(release)))
      )
      yield* promptly(Deferred.await(entered), `withLock(${JSON.stringify(key)}) did not enter a free lock`)
      return { fiber, release: Deferred.succeed(release, undefined) }
    })

  /** Fails the test unless a new acquirer gets the lock for `key` at once: whoever held it has released it. */
  const isFree = (lock: TokenLock.TokenLock["Type"], key: string, after: string) =>
    promptly(lock.withLock(key)(Effect.void), `the lock was not released after ${after}`)

  // without the test services: a lock on a real backend polls on the live clock
  vitestLayer(layer, { timeout, excludeTestServices: true })(`TokenLock conformance: ${name}`, (layerIt) => {
    const it = { effect: withTimeout(layerIt.effect, timeout) }

    it.effect(`mutual exclusion: ${fibers} fibers on one key are inside the lock one at a time`, () =>
      Effect.gen(function*() {
        const lock = yield* TokenLock.TokenLock
        const key = uniqueKey("exclusion")
        let inside = 0
        let most = 0
        let counter = 0
        const critical = Effect.gen(function*() {
          inside++
          most = Math.max(most, inside)
          // a read-modify-write with yields in between: any overlap loses an increment
          const read = counter
          for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
          counter = read + 1
          inside--
        })
        yield* Effect.forEach(Array.from({ length: fibers }), () => lock.withLock(key)(critical), {
          concurrency: "unbounded",
          discard: true
        })
        assert.strictEqual(most, 1, `${most} fibers were inside the lock for one key at the same time`)
        assert.strictEqual(
          counter,
          fibers,
          `${fibers - counter} of ${fibers} increments made inside the lock were lost`
        )
      }))

    it.effect("the effect runs with its lease: its key, held, and a fencing token greater than any before it", () =>
      Effect.gen(function*() {
        const lock = yield* TokenLock.TokenLock
        const key = uniqueKey("fencing")
        const outside = yield* TokenLock.CurrentLease
        assert.isTrue(Option.isNone(outside), "a lease outside the lock")
        const seen: Array<number> = []
        const enter = lock.withLock(key)(Effect.gen(function*() {
          const lease = yield* TokenLock.CurrentLease
          if (Option.isNone(lease)) return assert.fail("withLock ran the effect without a TokenLock.CurrentLease")
          assert.strictEqual(lease.value.key, key, "the lease is for another key")
          assert.isTrue(Number.isFinite(lease.value.acquiredAt), "the lease has no acquisition time")
          yield* lease.value.ensureHeld
          seen.push(lease.value.fencingToken)
        }))
        for (let i = 0; i < 3; i++) yield* enter
        // contending fibers enter one at a time: each entry's token is greater than the one before
        yield* Effect.forEach(Array.from({ length: 5 }), () => enter, { concurrency: "unbounded", discard: true })
        for (let i = 1; i < seen.length; i++) {
          assert.isAbove(seen[i]!, seen[i - 1]!, `fencing tokens in order of acquisition: ${seen.join(", ")}`)
        }
      }))

    it.effect("a lease the backend lost is detected, and a fenced write under it does not run", () =>
      Effect.gen(function*() {
        const loseLease = options.loseLease
        if (loseLease === undefined) return
        const lock = yield* TokenLock.TokenLock
        const key = uniqueKey("lost")
        let wrote = false
        const [first, failure] = yield* lock.withLock(key)(Effect.gen(function*() {
          const lease = Option.getOrThrow(yield* TokenLock.CurrentLease)
          yield* loseLease(key)
          const failure = yield* Effect.flip(TokenLock.fenced(Effect.sync(() => wrote = true)))
          return [lease.fencingToken, failure] as const
        }))
        assert.isFalse(wrote, "a write fenced by a lost lease ran")
        assert.isTrue(TokenLock.isLeaseLost(failure), `a lost lease failed with ${String(failure)}`)
        assert.isTrue(failure.transient, "a lost lease is transient: the next call tries again")
        const next = yield* promptly(
          lock.withLock(key)(Effect.map(TokenLock.CurrentLease, (lease) => Option.getOrThrow(lease).fencingToken)),
          "the lock was not free after its lease was lost"
        )
        assert.isAbove(next, first, "the next holder's fencing token is greater")
      }))

    it.effect("a waiter stays out while the lock is held, and enters once it is released", () =>
      Effect.gen(function*() {
        const lock = yield* TokenLock.TokenLock
        const key = uniqueKey("waiter")
        const events: Array<string> = []
        const holder = yield* hold(lock, key)
        const waiter = yield* Effect.fork(lock.withLock(key)(Effect.sync(() => events.push("waiter in"))))
        yield* Effect.sleep(exclusionWindow)
        assert.deepStrictEqual(events, [], "a second fiber entered the lock while the first held it")
        events.push("holder out")
        yield* holder.release
        yield* Fiber.join(holder.fiber)
        yield* promptly(Fiber.join(waiter), "the waiter did not get the lock after the holder released it")
        assert.deepStrictEqual(events, ["holder out", "waiter in"], "the waiter did not enter after the holder")
      }))

    it.effect("different keys do not wait for each other, even keys that differ only by a separator", () =>
      Effect.gen(function*() {
        const lock = yield* TokenLock.TokenLock
        const base = unique("keys")
        const held = `${base}\u001esession`
        const holder = yield* hold(lock, held)
        for (const other of [base, `${base}\u001fsession`, `${base}:session`, `${held}2`, `${held}\u001e`]) {
          yield* promptly(
            lock.withLock(other)(Effect.void),
            `withLock(${JSON.stringify(other)}) waited while only ${JSON.stringify(held)} was held`
          )
        }
        yield* holder.release
        yield* Fiber.join(holder.fiber)
      }))

    it.effect("the effect's value and typed error pass through unchanged; it runs once, in the caller's context", () =>
      Effect.gen(function*() {
        const lock = yield* TokenLock.TokenLock
        const key = uniqueKey("passthrough")
        const value = { answer: 42 }
        let runs = 0
        const result = yield* lock.withLock(key)(Effect.sync(() => {
          runs++
          return value
        }))
        assert.strictEqual(result, value, "withLock changed the effect's value")
        assert.strictEqual(runs, 1, `withLock ran the effect ${runs} times`)
        const error = new ExpectedFailure({ key })
        // `Cause.originalError`: an error that fails inside a span is wrapped to carry it (by Effect, not the lock)
        const failure = Cause.originalError(yield* Effect.flip(lock.withLock(key)(Effect.fail(error))))
        assert.isTrue(failure === error, `withLock changed the effect's typed error into ${String(failure)}`)
        const seen = yield* lock.withLock(key)(CallerService).pipe(
          Effect.provideService(CallerService, { name: "the caller's" })
        )
        assert.strictEqual(seen.name, "the caller's", "the effect did not run with the caller's services")
      }))

    it.effect("the lock is released when the effect fails", () =>
      Effect.gen(function*() {
        const lock = yield* TokenLock.TokenLock
        const key = uniqueKey("fails")
        const error = new ExpectedFailure({ key })
        const failure = Cause.originalError(yield* Effect.flip(lock.withLock(key)(Effect.fail(error))))
        assert.isTrue(failure === error, `withLock changed the effect's typed error into ${String(failure)}`)
        yield* isFree(lock, key, "the effect failed")
      }))

    it.effect("the lock is released when the effect dies, and the defect passes through", () =>
      Effect.gen(function*() {
        const lock = yield* TokenLock.TokenLock
        const key = uniqueKey("dies")
        const defect = new Error("expected defect")
        const exit = yield* Effect.exit(lock.withLock(key)(Effect.die(defect)))
        assert.isTrue(Exit.isFailure(exit), "withLock turned a defect into a success")
        if (Exit.isFailure(exit)) {
          const died = Option.map(Cause.dieOption(exit.cause), Cause.originalError)
          assert.isTrue(
            Option.getOrUndefined(died) === defect,
            `withLock did not pass the defect through: ${Cause.pretty(exit.cause)}`
          )
        }
        yield* isFree(lock, key, "the effect died")
      }))

    it.effect("the lock is released when its holder is interrupted", () =>
      Effect.gen(function*() {
        const lock = yield* TokenLock.TokenLock
        const key = uniqueKey("interrupted")
        const holder = yield* hold(lock, key)
        yield* promptly(Fiber.interrupt(holder.fiber), "interrupting the holder did not end it")
        yield* isFree(lock, key, "its holder was interrupted")
      }))

    it.effect("a waiter interrupted while waiting never enters, and leaves the lock free once released", () =>
      Effect.gen(function*() {
        const lock = yield* TokenLock.TokenLock
        const key = uniqueKey("interrupted-waiter")
        let entered = false
        const holder = yield* hold(lock, key)
        const waiter = yield* Effect.fork(lock.withLock(key)(Effect.sync(() => entered = true)))
        yield* Effect.sleep(exclusionWindow)
        yield* promptly(Fiber.interrupt(waiter), "interrupting a waiter did not end it")
        assert.isFalse(entered, "an interrupted waiter entered the lock")
        yield* holder.release
        yield* Fiber.join(holder.fiber)
        yield* isFree(lock, key, "its holder finished while an interrupted waiter had been waiting")
        assert.isFalse(entered, "an interrupted waiter entered the lock later")
      }))
  })
}
