/**
 * Mutual exclusion for token renewal across processes. The token cache always deduplicates within a process;
 * with a shared store (Redis, SQL) several processes may hold the same user's refresh token, and a provider that
 * rotates refresh tokens revokes the whole grant when a used one comes back. A `TokenLock` makes one process at a
 * time renew a key; the others wait, then read what it stored.
 *
 * A lock hands its holder a `Lease` with a fencing token (see `CurrentLease`). A holder can lose its lease without
 * knowing it — a process that stalls (a long GC pause, a frozen VM) past a Redis lease's time, a lease Redis could
 * not extend, a PostgreSQL session that died — and another instance then takes over. The cache checks the lease
 * before it asks the provider, and the stores check it with every write they make under it (atomically with the
 * write where the lock and the store share a backend): a holder that lost its lease never writes.
 *
 * The managers require a `TokenLock`, so that a deployment states which it has: `layerMemory` for one process (the
 * token cache already excludes within a process), `RedisTokenLock` / `SqlTokenLock` for several. A manager over a
 * store marked `distributed` with a lock that is not logs a warning when it starts.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { isTokenStoreError, TokenStoreError } from "./TokenError.js"

/**
 * Every manager requires one, so that a deployment states which it has.
 *
 * @example
 * ```ts
 * import { TokenLock } from "@effect-atm/core"
 * import { RedisConnection, RedisTokenLock } from "@effect-atm/store-redis"
 * import { SqlTokenLock } from "@effect-atm/store-sql"
 * import { PgClient } from "@effect/sql-pg"
 * import { Config, Layer } from "effect"
 *
 * const OneProcess = TokenLock.layerMemory
 * const WithRedis = RedisTokenLock.layer().pipe(Layer.provide(RedisConnection.layerConfig()))
 * const WithPostgres = SqlTokenLock.layer().pipe(Layer.provide(PgClient.layerConfig({ url: Config.redacted("DATABASE_URL") })))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class TokenLock extends Context.Tag("@effect-atm/core/TokenLock")<TokenLock, {
  /** Whether the lock excludes other processes (false: this process only). */
  readonly distributed: boolean
  /**
   * Runs `effect` while holding the lock for `key`, with the holder's `Lease` as its `CurrentLease`.
   * Implementations must re-check nothing themselves: the cache re-reads the store inside the lock and renews only
   * a token that is still stale.
   */
  readonly withLock: (
    key: string
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TokenStoreError, R>
}>() {}

/**
 * What a holder of the lock for one key has: the proof, checked by the stores, that it may still write.
 *
 * A lease is held from its acquisition until the lock is released — or lost: a lease with a time limit (Redis) is
 * lost when it runs out before it was extended, when an extension fails, or when Redis no longer has it; a lease
 * on a database session (PostgreSQL) is lost with the session. A lost lease is never held again: the renewal
 * fails (`TokenStoreError` with `operation: "lease"`, transient) and the next call starts over, re-reading what the
 * instance that took over stored.
 *
 * @since 0.3.0
 * @category models
 */
export interface Lease {
  /** The lock key. */
  readonly key: string
  /**
   * The fencing token: greater for every later acquisition of the key (by any instance), so that a backend that
   * records it can refuse a write from an earlier holder.
   */
  readonly fencingToken: number
  /** When the lease was acquired (epoch milliseconds of the `Clock`). */
  readonly acquiredAt: number
  /**
   * Succeeds while the lease is held; fails with `TokenStoreError` (`operation: "lease"`) once it is lost. A
   * store whose backend cannot check the lease in the same step as its write calls it just before the write.
   */
  readonly ensureHeld: Effect.Effect<void, TokenStoreError>
}

/**
 * The lease of the lock the current fiber holds, if any: `TokenLock.withLock` provides it to the effect it runs.
 * Stores read it to fence the writes made under it (see `fenced`); without a lease, a write is not fenced.
 *
 * @since 0.3.0
 * @category references
 */
export class CurrentLease extends Context.Reference<CurrentLease>()("@effect-atm/core/TokenLock/CurrentLease", {
  defaultValue: (): Option.Option<Lease> => Option.none()
}) {}

/**
 * Succeeds when the current fiber holds no lease or holds its lease still; fails with the lease's error once it
 * is lost.
 *
 * @since 0.3.0
 * @category fencing
 */
export const ensureHeld: Effect.Effect<void, TokenStoreError> = Effect.flatMap(
  CurrentLease,
  (lease) => lease._tag === "None" ? Effect.void : lease.value.ensureHeld
)

/**
 * Runs a store write only while the current lease (if any) is held: for stores whose backend cannot check the lease
 * in the same step as the write (a store and a lock on different backends). A lost lease fails the write before it
 * starts, with a `TokenStoreError` of `operation: "lease"`.
 *
 * @example
 * ```ts
 * import { TokenLock, UserTokenStore } from "@effect-atm/core"
 * import { Effect, Option } from "effect"
 *
 * const rows = new Map<string, unknown>()
 *
 * // a custom store's write: refused once the renewal that makes it has lost its lease
 * const store: UserTokenStore.UserTokenStore["Type"]["store"] = (user, token) =>
 *   TokenLock.fenced(Effect.sync(() => void rows.set(user, token)))
 * ```
 *
 * @since 0.3.0
 * @category fencing
 */
export const fenced = <A, E, R>(write: Effect.Effect<A, E, R>): Effect.Effect<A, E | TokenStoreError, R> =>
  Effect.zipRight(ensureHeld, write)

/**
 * The error of a write refused because its lease is lost. Transient: the next call re-reads the store and renews
 * again if it must.
 *
 * @since 0.3.0
 * @category fencing
 */
export const leaseLost = (options: {
  /** The store (or lock) that found it: `"redis"`, `"postgresql"`, … */
  readonly store: string
  /** Why the lease is lost, e.g. "it ran out before it was extended". */
  readonly reason: string
}): TokenStoreError =>
  new TokenStoreError({
    store: options.store,
    operation: "lease",
    reason: `it was lost (${options.reason}); another instance may have taken over, so nothing was written`,
    transient: true
  })

/**
 * Whether an error is a write refused because its renewal lease was lost (see `leaseLost`).
 *
 * @since 0.3.0
 * @category fencing
 */
export const isLeaseLost = (error: unknown): error is TokenStoreError =>
  isTokenStoreError(error) && error.operation === "lease"

let fencingTokens = 0

/**
 * A lock for one process. The token cache already runs one renewal per key at a time within a process, so this
 * lock adds nothing to it: it says, in the layer graph, that the deployment is a single process. Its leases are
 * never lost.
 *
 * @since 0.2.0
 * @category constructors
 */
export const memory: TokenLock["Type"] = TokenLock.of({
  distributed: false,
  withLock: (key) => (effect) =>
    Effect.flatMap(Clock.currentTimeMillis, (acquiredAt) =>
      Effect.provideService(
        effect,
        CurrentLease,
        Option.some({ key, fencingToken: ++fencingTokens, acquiredAt, ensureHeld: Effect.void })
      ))
})

/**
 * `memory` as a layer: for a single process (a worker, one web server) with in-memory or file-based stores.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<TokenLock> = Layer.succeed(TokenLock, memory)
