import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { type AccessToken, isFresh, isSameToken } from "../AccessToken.js"
import type { Backend, Options, TokenCache } from "../TokenCache.js"
import type { TokenStoreError } from "../TokenError.js"

interface LockEntry {
  readonly semaphore: Effect.Semaphore
  users: number
}

/** @internal */
export const make = <K, V, E>(
  backend: Backend<K, V, E>,
  options: Options
): Effect.Effect<TokenCache<K, V, E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const renewBefore = Duration.decode(options.renewBefore)
    const lockKeyOf = backend.lockKeyOf ?? backend.keyOf
    const flights = new Map<string, Deferred.Deferred<V, E | TokenStoreError>>()
    const locks = new Map<string, LockEntry>()
    const memo = options.memoize ? new Map<string, V>() : undefined
    const remember = (id: string, value: V) => {
      if (memo === undefined) return
      if (memo.size >= 10_000 && !memo.has(id)) memo.delete(memo.keys().next().value!)
      memo.set(id, value)
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

    const withLock = <A, E1>(key: string, effect: Effect.Effect<A, E1>): Effect.Effect<A, E1 | TokenStoreError> =>
      withLocalLock(key, options.lock === undefined ? effect : options.lock.withLock(key)(effect))

    /** Inside the lock: re-read, and renew only if what is stored is still stale (or still the rejected token). */
    const renewal = (key: K, rejected: AccessToken | undefined): Effect.Effect<V, E | TokenStoreError> =>
      withLock(
        lockKeyOf(key),
        Effect.gen(function*() {
          const current = yield* backend.read(key)
          if (Option.isSome(current)) {
            const token = freshToken(current.value, yield* Clock.currentTimeMillis)
            if (token !== undefined && (rejected === undefined || !isSameToken(token, rejected))) {
              return current.value
            }
          }
          return yield* backend.renew(key, current)
        })
      )

    /** Joins the renewal in flight for the key, or starts one in the cache's scope. */
    const flight = (key: K, rejected: AccessToken | undefined): Effect.Effect<V, E | TokenStoreError> =>
      Effect.suspend(() => {
        const id = backend.keyOf(key)
        const running = flights.get(id)
        if (running !== undefined) {
          if (rejected === undefined) return Deferred.await(running)
          // A renewal that started before the rejection may hand back the rejected token: renew again then.
          return Effect.flatMap(Deferred.await(running), (value) => {
            const token = backend.accessToken(value)
            return token !== undefined && isSameToken(token, rejected) ? flight(key, rejected) : Effect.succeed(value)
          })
        }
        const deferred = Deferred.unsafeMake<V, E | TokenStoreError>(FiberId.none)
        flights.set(id, deferred)
        return renewal(key, rejected).pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              // leave the map before completing, so that no caller ever joins a finished (or failed) flight
              if (flights.get(id) === deferred) flights.delete(id)
              if (exit._tag === "Success") remember(id, exit.value)
              Deferred.unsafeDone(deferred, exit)
            })
          ),
          Effect.forkIn(scope),
          Effect.zipRight(Deferred.await(deferred))
        )
      })

    const read = (key: K): Effect.Effect<V, E | TokenStoreError> =>
      Effect.flatMap(backend.read(key), (current) => {
        if (Option.isNone(current)) return flight(key, undefined)
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          if (freshToken(current.value, now) === undefined) return flight(key, undefined)
          remember(backend.keyOf(key), current.value)
          return Effect.succeed(current.value)
        })
      })

    const get = memo === undefined ?
      read :
      (key: K): Effect.Effect<V, E | TokenStoreError> =>
        Effect.clockWith((clock) => {
          const value = memo.get(backend.keyOf(key))
          return value !== undefined && freshToken(value, clock.unsafeCurrentTimeMillis()) !== undefined
            ? Effect.succeed(value)
            : read(key)
        })

    /** A forced renewal treats whatever token is stored now as rejected. */
    const renew = (key: K, rejected?: AccessToken): Effect.Effect<V, E | TokenStoreError> =>
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
      inFlight: Effect.sync(() => flights.size)
    } satisfies TokenCache<K, V, E>
  })
