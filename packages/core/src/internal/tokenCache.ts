import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import { type AccessToken, isFresh, isSameToken, renewAt } from "../AccessToken.js"
import type { Backend, Backoff, Options, TokenCache } from "../TokenCache.js"
import { isTokenError, isTransient, TokenManagerClosed, type TokenStoreError } from "../TokenError.js"
import { ensureHeld } from "../TokenLock.js"
import { clockOf, currentClock, InlineHit } from "./inlineHit.js"
import { readThrough } from "./readThrough.js"
import type { CacheInstruments } from "./tokenMetrics.js"

/** @internal */
export const defaultBackoff = {
  initial: Duration.seconds(1),
  max: Duration.seconds(30),
  jitter: 0.2
}

/** A provider's `Retry-After` is honoured up to this long (or the backoff's `max`, if longer). */
const retryAfterCap = 300_000

/** The `retryAfter` (milliseconds) an error may carry, read defensively: anything else counts as none. */
const retryAfterOf = (error: unknown): number => {
  if (typeof error !== "object" || error === null || !("retryAfter" in error)) return 0
  const value = (error as { readonly retryAfter: unknown }).retryAfter
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0
}

const defaultIsTransient = (error: unknown): boolean => isTokenError(error) && isTransient(error)

interface BackoffEntry<E> {
  readonly error: E
  readonly until: number
  readonly attempt: number
}

/** The window after `attempt` consecutive transient failures (1 = the first), in milliseconds. */
const backoffWindow = (backoff: ResolvedBackoff, attempt: number, error: unknown, random: number): number => {
  const exponential = Math.min(backoff.max, backoff.initial * 2 ** Math.min(attempt - 1, 52))
  const jittered = exponential * (1 - backoff.jitter * random)
  return Math.max(jittered, Math.min(retryAfterOf(error), Math.max(backoff.max, retryAfterCap)))
}

interface ResolvedBackoff {
  readonly initial: number
  readonly max: number
  readonly jitter: number
}

const resolveBackoff = (backoff: Backoff | false | undefined): ResolvedBackoff | undefined =>
  backoff === false ? undefined : {
    initial: Duration.toMillis(Duration.decode(backoff?.initial ?? defaultBackoff.initial)),
    max: Duration.toMillis(Duration.decode(backoff?.max ?? defaultBackoff.max)),
    jitter: Math.min(1, Math.max(0, backoff?.jitter ?? defaultBackoff.jitter))
  }

interface MemoEntry<V> {
  /** `AccessToken.isFresh` is true before this instant. */
  readonly freshUntil: number
  readonly hit: Effect.Effect<V>
}

/**
 * A memoized key's `get`, decided when it runs, inside the caller's fiber and by that fiber's clock: run by the
 * runtime, one step (the memo's success, the renewal in flight, or a read); under `yield*`, a hit is taken inline
 * (see `InlineHit`).
 */
class MemoGet<K, V, E> extends InlineHit<V, E> {
  constructor(readonly memo: MemoLookup<K, V, E>, readonly key: K, readonly id: string) {
    super()
  }
  commit(): Effect.Effect<V, E> {
    const clock = currentClock()
    return clock === undefined
      ? Effect.clockWith((clock) => this.memo.lookup(this.key, this.id, clock))
      : this.memo.lookup(this.key, this.id, clock)
  }
  hitIn(fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<V> | undefined {
    return this.memo.hit(this.key, this.id, clockOf(fiber))
  }
}

/** What a `MemoGet` runs, shared by all of a cache's (so that a `get` allocates no closure). */
interface MemoLookup<K, V, E> {
  /** The memo's success while the key is fresh by this clock (and the cache open), else `undefined`. */
  readonly hit: (key: K, id: string, clock: Clock.Clock) => Effect.Effect<V> | undefined
  /** The memo's success, else the renewal of a cold key in flight, else a read of the store. */
  readonly lookup: (key: K, id: string, clock: Clock.Clock) => Effect.Effect<V, E>
}

/**
 * A renewal in flight and the callers waiting for it. A waiter parks on a bare `Effect.async` and is resumed with
 * the renewal's exit. Not a `Deferred`: its `await` wraps every waiter in an interruption handler (about ten more
 * run-loop steps, and frames and closures held while the waiter is parked), ~12 % of the CPU time of 10,000 callers
 * waiting for one renewal (bench P3). Instead, an interrupted waiter is never resumed (its fiber would ignore a late
 * resume anyway), and whenever the list has doubled it drops the waiters whose fiber has ended, so that callers
 * given up on while a renewal hangs do not pile up.
 */
class Flight<V, E> {
  /** Waiting for the renewal: one effect for every caller that joins. */
  readonly join: Effect.Effect<V, E>
  private exit: Exit.Exit<V, E> | undefined = undefined
  private resumes: Array<(exit: Exit.Exit<V, E>) => void> = []
  /** The fiber of each waiter (`undefined` if unknown), in the order of `resumes`. */
  private fibers: Array<Fiber.RuntimeFiber<unknown, unknown> | undefined> = []
  private pruneAt = 64

  /**
   * `cold`: started because the key held nothing valid (not forced, nothing to fall back on): a caller of `get`
   * joins it without reading the store, since what it would read there could only send it here.
   */
  constructor(readonly cold: boolean) {
    this.join = Effect.async<V, E>((resume) => this.wait(resume))
  }

  private wait(resume: (exit: Exit.Exit<V, E>) => void): void {
    if (this.exit !== undefined) return resume(this.exit)
    if (this.resumes.length >= this.pruneAt) this.prune()
    const fiber = Fiber.getCurrentFiber()
    this.resumes.push(resume)
    this.fibers.push(fiber._tag === "Some" ? fiber.value : undefined)
  }

  private prune(): void {
    const { fibers, resumes } = this
    let kept = 0
    for (let i = 0; i < resumes.length; i++) {
      const fiber = fibers[i]
      if (fiber !== undefined && fiber.unsafePoll() !== null) continue
      resumes[kept] = resumes[i]!
      fibers[kept++] = fiber
    }
    resumes.length = kept
    fibers.length = kept
    this.pruneAt = Math.max(64, 2 * kept)
  }

  /** Resumes every waiter with `exit` (the first call only); a later `join` has it at once. */
  done(exit: Exit.Exit<V, E>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    const resumes = this.resumes
    this.resumes = []
    this.fibers = []
    for (let i = 0; i < resumes.length; i++) resumes[i]!(exit)
  }
}

/**
 * Provided to a renewal: releases its waiters early with a (transient) error while the renewal itself goes on
 * holding the lock, e.g. a refresh whose answer is awaited past the time callers wait (see `AnswerGrace`). Until
 * the renewal ends, calls for its key fail at once with that error (a still-valid value is served instead): none
 * waits for the lock it holds, none starts another renewal with the refresh token it has spent.
 *
 * @internal
 */
export class ReleaseWaiters extends Context.Reference<ReleaseWaiters>()(
  "@effect-atm/core/internal/ReleaseWaiters",
  { defaultValue: (): (error: unknown) => Effect.Effect<void> => () => Effect.void }
) {}

interface LockEntry {
  readonly semaphore: Effect.Semaphore
  users: number
}

/** @internal */
export const make = <K, V, E>(
  backend: Backend<K, V, E>,
  options: Options,
  instruments?: CacheInstruments<K>
): Effect.Effect<TokenCache<K, V, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    // renewals run in a scope of their own, closed after the finalizer below has failed their waiters
    const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const renewBefore = Duration.decode(options.renewBefore)
    const lockKeyOf = backend.lockKeyOf ?? backend.keyOf
    const flights = new Map<string, Flight<V, E | TokenStoreError | TokenManagerClosed>>()
    const locks = new Map<string, LockEntry>()
    // a hit is one comparison: each entry keeps the instant it stops being fresh and its ready-made success
    const memo = options.memoize ? new Map<string, MemoEntry<V>>() : undefined

    // Once the scope has closed no renewal can run in it any more (a fiber forked into a closed scope is
    // interrupted before it starts, leaving its waiters hanging): every call fails at once instead, and the
    // waiters of renewals still in flight fail with the same error (rather than seeing them interrupted).
    let closed = false
    const closedError = new TokenManagerClosed()
    const failClosed = Effect.fail(closedError)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
        const exit = Exit.fail(closedError)
        for (const flight of flights.values()) flight.done(exit)
        flights.clear()
      })
    )
    const remember = (id: string, value: V) => {
      if (memo === undefined) return
      if (memo.size >= 10_000 && !memo.has(id)) memo.delete(memo.keys().next().value!)
      const token = backend.accessToken(value)
      memo.set(id, {
        freshUntil: token === undefined ? -Infinity : Math.min(renewAt(token, renewBefore), token.expiresAt),
        hit: Effect.succeed(value)
      })
    }

    const backoff = resolveBackoff(options.backoff)
    const isTransientFailure: (error: E | TokenStoreError) => boolean = backend.isTransient ?? defaultIsTransient
    const transient = (error: E | TokenStoreError | TokenManagerClosed): boolean =>
      error !== closedError && isTransientFailure(error as E | TokenStoreError)
    const backoffs = new Map<string, BackoffEntry<E | TokenStoreError | TokenManagerClosed>>()
    /**
     * Lock keys whose renewal has released its waiters and still runs (holding the lock), with the error they were
     * released with: the lock key's renewals would only wait for it.
     */
    const answering = new Map<string, E | TokenStoreError | TokenManagerClosed>()
    /** Keys whose renewal is scheduled to run again in the background when their window ends. */
    const retries = new Set<string>()

    /** Records the outcome of a renewal for the key's backoff. */
    const settle = (
      id: string,
      exit: Exit.Exit<V, E | TokenStoreError | TokenManagerClosed>,
      now: number,
      random: number
    ) => {
      if (exit._tag === "Success") {
        backoffs.delete(id)
        return
      }
      const failure = Cause.failureOption(exit.cause)
      if (failure._tag === "None") return // interrupted or died: nothing learnt about the provider
      if (backoff === undefined || !transient(failure.value)) {
        backoffs.delete(id)
        return
      }
      const previous = backoffs.get(id)
      // a failure long after the last window closed starts again from the first window
      const attempt = previous !== undefined && now - previous.until < backoff.max
        ? previous.attempt + 1
        : 1
      if (backoffs.size >= 10_000 && previous === undefined) backoffs.delete(backoffs.keys().next().value!)
      backoffs.set(id, {
        error: failure.value,
        attempt,
        until: now + backoffWindow(backoff, attempt, failure.value, random)
      })
    }

    const freshToken = (value: V, now: number): AccessToken | undefined => {
      const token = backend.accessToken(value)
      return token !== undefined && isFresh(token, now, renewBefore) ? token : undefined
    }

    /** Serializes renewals of one lock key in this process; the entry goes away when nobody holds or waits. */
    const withLocalLock = <A, E1>(key: string, effect: Effect.Effect<A, E1>): Effect.Effect<A, E1> =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          let entry = locks.get(key)
          if (entry === undefined) {
            entry = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
            locks.set(key, entry)
          }
          entry.users++
          return entry
        }),
        (entry) => entry.semaphore.withPermits(1)(effect),
        (entry) =>
          Effect.sync(() => {
            if (--entry.users === 0) locks.delete(key)
          })
      )

    // under the lock, reads bypass any near cache: what is read there decides which refresh token is spent
    const withLock = <A, E1>(key: string, effect: Effect.Effect<A, E1>): Effect.Effect<A, E1 | TokenStoreError> =>
      withLocalLock(
        key,
        (options.lock === undefined ? effect : options.lock.withLock(key)(effect)).pipe(
          Effect.locally(readThrough, true)
        )
      )

    /** `withLock` for a key's renewal, reporting how long it waited for the lock when metrics are on. */
    const withRenewalLock = <A, E1>(key: K, effect: Effect.Effect<A, E1>): Effect.Effect<A, E1 | TokenStoreError> =>
      instruments === undefined ? withLock(lockKeyOf(key), effect) : Effect.clockWith((clock) => {
        const requested = clock.unsafeCurrentTimeNanos()
        return withLock(
          lockKeyOf(key),
          Effect.zipRight(
            Effect.sync(() => instruments.lockWait(key, Number(clock.unsafeCurrentTimeNanos() - requested) / 1e9)),
            effect
          )
        )
      })

    /** Inside the lock: re-read, and renew only if what is stored is still stale (or still the rejected token). */
    const renewal = (
      key: K,
      rejected: AccessToken | undefined
    ): Effect.Effect<V, E | TokenStoreError | TokenManagerClosed> =>
      withRenewalLock(
        key,
        Effect.gen(function*() {
          const current = yield* backend.read(key)
          if (Option.isSome(current)) {
            const token = freshToken(current.value, yield* Clock.currentTimeMillis)
            if (token !== undefined && (rejected === undefined || !isSameToken(token, rejected))) {
              return current.value
            }
          }
          // a holder that lost its lease (stalled past it) must not spend a refresh token the next holder may use
          yield* ensureHeld
          return yield* backend.renew(key, current)
        })
      )

    /**
     * Joins the renewal in flight for the key, or starts one in the cache's scope — unless the key is backing off,
     * then fails at once with the error that started the window. `held` is a value still valid (inside its renewal
     * window, not expired) that callers are served while renewal fails: its renewal is retried in the background.
     * `retryOf` is the end of the window a background retry waited for: that window does not refuse it.
     */
    const flight = (
      key: K,
      rejected: AccessToken | undefined,
      held?: V,
      retryOf?: number
    ): Effect.Effect<V, E | TokenStoreError | TokenManagerClosed> =>
      Effect.clockWith((clock) => {
        if (closed) return failClosed
        const id = backend.keyOf(key)
        const running = flights.get(id)
        if (running !== undefined) {
          instruments?.lookup(key, "join")
          if (rejected === undefined) return running.join
          // A renewal that started before the rejection may hand back the rejected token: renew again then.
          return Effect.flatMap(running.join, (value) => {
            const token = backend.accessToken(value)
            return token !== undefined && isSameToken(token, rejected) ? flight(key, rejected) : Effect.succeed(value)
          })
        }
        const lockKey = lockKeyOf(key)
        const answered = answering.get(lockKey)
        if (answered !== undefined) {
          instruments?.lookup(key, "backoff")
          return Effect.fail(answered)
        }
        const backingOff = backoffs.get(id)
        if (
          backingOff !== undefined && clock.unsafeCurrentTimeMillis() < backingOff.until &&
          (retryOf === undefined || backingOff.until > retryOf)
        ) {
          instruments?.lookup(key, "backoff")
          const error = Effect.fail(backingOff.error)
          return held === undefined ? error : Effect.zipRight(scheduleRetry(key, id, held), error)
        }
        instruments?.lookup(key, "miss")
        const current = new Flight<V, E | TokenStoreError | TokenManagerClosed>(
          rejected === undefined && held === undefined
        )
        flights.set(id, current)
        let released = false
        const release = (error: unknown) =>
          Effect.sync(() => {
            if (flights.get(id) !== current) return
            flights.delete(id)
            released = true
            answering.set(lockKey, error as E | TokenStoreError)
            current.done(Exit.fail(error as E | TokenStoreError))
          })
        return renewal(key, rejected).pipe(
          Effect.provideService(ReleaseWaiters, release),
          Effect.onExit((exit) =>
            Effect.flatMap(Random.next, (random) =>
              Effect.sync(() => {
                // leave the map before completing, so that no caller ever joins a finished (or failed) flight
                if (flights.get(id) === current) flights.delete(id)
                if (released) answering.delete(lockKey)
                if (exit._tag === "Success") remember(id, exit.value)
                settle(id, exit, clock.unsafeCurrentTimeMillis(), random)
                current.done(exit)
              })).pipe(
                Effect.zipRight(
                  exit._tag === "Failure" && held !== undefined ? scheduleRetry(key, id, held) : Effect.void
                )
              )
          ),
          Effect.forkIn(scope),
          Effect.zipRight(current.join)
        )
      })

    /**
     * While a backing-off key holds a value that is not expired yet, renews it again in the background when the
     * window ends (once per window), so that a recovered provider is noticed before the value expires.
     */
    function scheduleRetry(key: K, id: string, held: V): Effect.Effect<void> {
      return Effect.clockWith((clock) => {
        const window = backoffs.get(id)
        const token = backend.accessToken(held)
        if (window === undefined || token === undefined || retries.has(id)) return Effect.void
        if (window.until >= token.expiresAt) return Effect.void // expired by then: callers renew it themselves
        retries.add(id)
        return Effect.sleep(Math.max(0, window.until - clock.unsafeCurrentTimeMillis())).pipe(
          Effect.zipRight(Effect.sync(() => retries.delete(id))),
          // waking at the window's end may still read as a hair before it: refused by that window, the retry would
          // be scheduled again at once, and again, never letting the clock (or a TestClock) move on
          Effect.zipRight(Effect.suspend(() => flight(key, undefined, held, window.until))),
          Effect.ignore,
          Effect.onInterrupt(() => Effect.sync(() => retries.delete(id))),
          // scheduled from a renewal's exit handler, which is uninterruptible: the retry must not inherit that
          Effect.interruptible,
          Effect.forkIn(scope),
          Effect.asVoid
        )
      })
    }

    /** A value inside its renewal window: renew it, but hand it out while it is unexpired and renewal fails. */
    const renewHeld = (key: K, held: V, now: number): Effect.Effect<V, E | TokenStoreError | TokenManagerClosed> => {
      const token = backend.accessToken(held)
      if (token === undefined || now >= token.expiresAt) return flight(key, undefined)
      return flight(key, undefined, held).pipe(
        Effect.catchIf(transient, (error) =>
          Effect.clockWith((clock) =>
            clock.unsafeCurrentTimeMillis() < token.expiresAt ? Effect.succeed(held) : Effect.fail(error)
          ))
      )
    }

    const read = (key: K): Effect.Effect<V, E | TokenStoreError | TokenManagerClosed> =>
      Effect.flatMap(backend.read(key), (current) => {
        if (Option.isNone(current)) {
          return flight(key, undefined)
        }
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          if (freshToken(current.value, now) === undefined) {
            return renewHeld(key, current.value, now)
          }
          remember(backend.keyOf(key), current.value)
          instruments?.lookup(key, "hit")
          return Effect.succeed(current.value)
        })
      })

    /** The renewal of a cold key in flight, joined as it is (see `Flight.cold`), or `undefined`. */
    const joinCold = (key: K, id: string): Effect.Effect<V, E | TokenStoreError | TokenManagerClosed> | undefined => {
      const running = flights.get(id)
      if (running === undefined || !running.cold) {
        return undefined
      }
      instruments?.lookup(key, "join")
      return running.join
    }

    const memoHit = (key: K, id: string, clock: Clock.Clock): Effect.Effect<V> | undefined => {
      const entry = closed ? undefined : memo?.get(id)
      if (entry === undefined || clock.unsafeCurrentTimeMillis() >= entry.freshUntil) {
        return undefined
      }
      instruments?.lookup(key, "hit")
      return entry.hit
    }
    const memoLookup: MemoLookup<K, V, E | TokenStoreError | TokenManagerClosed> = {
      hit: memoHit,
      lookup: (key, id, clock) =>
        memoHit(key, id, clock) ?? (closed ? failClosed : joinCold(key, id) ?? read(key))
    }

    const get = memo === undefined ?
      (key: K): Effect.Effect<V, E | TokenStoreError | TokenManagerClosed> =>
        Effect.suspend(() =>
          closed ? failClosed : joinCold(key, backend.keyOf(key)) ?? read(key)
        ) :
      (key: K): Effect.Effect<V, E | TokenStoreError | TokenManagerClosed> =>
        new MemoGet(memoLookup, key, backend.keyOf(key))

    /** A forced renewal treats whatever token is stored now as rejected. */
    const renew = (key: K, rejected?: AccessToken): Effect.Effect<V, E | TokenStoreError | TokenManagerClosed> =>
      rejected !== undefined
        ? flight(key, rejected)
        : Effect.flatMap(
          backend.read(key),
          (current) => flight(key, Option.isSome(current) ? backend.accessToken(current.value) : undefined)
        )

    return {
      get,
      renew,
      withLock: (lockKey) => (effect) => withLock(lockKey, effect),
      forget: (key) => Effect.sync(() => memo?.delete(backend.keyOf(key))),
      inFlight: Effect.sync(() => flights.size + answering.size)
    } satisfies TokenCache<K, V, E>
  })
