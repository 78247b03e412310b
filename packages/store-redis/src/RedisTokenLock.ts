/**
 * Cluster-wide single flight: a `TokenLock` on Redis. Before renewing a key, an instance takes a lease (`SET NX
 * PX` with a random owner id) and extends it while it works; the others poll, with a growing pause, until the
 * lease is gone; the token cache then re-reads the store and renews only if what it finds is still stale. Only
 * the owner releases a lease (a compare-and-delete script). An owner that crashed stops extending its lease, which
 * runs out after `leaseTime`: another instance takes over.
 *
 * @since 0.1.0
 */
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
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: LockOptions = {}): Effect.Effect<TokenLock["Type"], never, RedisConnection> =>
  Effect.map(RedisConnection, (client) => internal.makeTokenLock(client, options))

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
export const layer = (options?: LockOptions): Layer.Layer<TokenLock, never, RedisConnection> =>
  Layer.effect(TokenLock, make(options))
