/**
 * Cluster-wide single flight: a `TokenLock` on Redis. Before renewing a key, an instance takes a lease — a key set
 * only if absent, with a time limit, holding the next fencing token and a random owner id — and extends it while it
 * works; the others poll, with a growing pause, until the lease is gone; the token cache then re-reads the store and
 * renews only if what it finds is still stale. Only the owner releases a lease (a compare-and-delete script). An
 * owner that crashed stops extending its lease, which runs out after `leaseTime`: another instance takes over.
 *
 * Fenced: a holder that stalls past its lease (or whose extension fails — Redis unreachable — which counts as a
 * lost lease) must not write after another instance took over. The renewal checks its lease before it asks the
 * provider, and the `RedisStore` on the same connection makes each write under a lease a script that first checks
 * that the lock key still holds this lease: a write from a lost lease fails (`TokenStoreError` with
 * `operation: "lease"`) and changes nothing. Stores elsewhere (PostgreSQL, your own) check the lease just before
 * they write (`TokenLock.fenced`).
 *
 * @since 0.1.0
 */
import type { TokenStoreError } from "@effect-atm/core/TokenError"
import { TokenLock } from "@effect-atm/core/TokenLock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "./internal/redis.js"
import { RedisConnection } from "./RedisConnection.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface LockOptions {
  /** Prefix of every key (`<prefix>lock:<key>`). Default: `effect-atm:`. */
  readonly prefix?: string | undefined
  /**
   * How long a lease lasts without being extended: how soon another instance takes over from one that crashed
   * mid-renewal. The holder extends it every third of this while it renews. Default: 10 seconds.
   */
  readonly leaseTime?: Duration.DurationInput | undefined
  /** How long to wait for a lease held by others before failing with `TokenStoreError`. Default: 30 seconds. */
  readonly lockTimeout?: Duration.DurationInput | undefined
}

/**
 * Builds the lock over the connection in the context. An invalid `leaseTime` or `lockTimeout` fails with a
 * `TokenStoreError` naming the option.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: LockOptions = {}): Effect.Effect<TokenLock["Type"], TokenStoreError, RedisConnection> =>
  Effect.zipRight(
    internal.checkLockOptions(options),
    Effect.map(RedisConnection, (client) => internal.makeTokenLock(client, options))
  )

/**
 * The lock over the connection in the context; `RedisStore.layer` already includes it. On its own, it serves a
 * store elsewhere, e.g. PostgreSQL.
 *
 * @example
 * ```ts
 * import { AccessTokenStore, TokenEncryption } from "@effect-atm/core"
 * import { RedisConnection, RedisTokenLock } from "@effect-atm/store-redis"
 * import { SqlStore } from "@effect-atm/store-sql"
 * import { Layer, Redacted } from "effect"
 *
 * // users' tokens in PostgreSQL, renewals excluded across instances by a Redis lease
 * const StoresLive = Layer.mergeAll(
 *   SqlStore.layerPg({ url: Redacted.make("postgres://app@db:5432/app") }),
 *   RedisTokenLock.layer({ leaseTime: "10 seconds" }).pipe(Layer.provide(RedisConnection.layerConfig())),
 *   AccessTokenStore.layerMemory()
 * ).pipe(Layer.provide(TokenEncryption.layerConfig()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: LockOptions): Layer.Layer<TokenLock, TokenStoreError, RedisConnection> =>
  Layer.effect(TokenLock, make(options))
