/**
 * Mutual exclusion for token renewal across processes. The token cache always deduplicates within a process;
 * with a shared store (Redis, SQL) several processes may hold the same user's refresh token, and a provider that
 * rotates refresh tokens revokes the whole grant when a used one comes back. A `TokenLock` makes one process at a
 * time renew a key; the others wait, then read what it stored.
 *
 * The managers require a `TokenLock`, so that a deployment states which it has: `layerMemory` for one process (the
 * token cache already excludes within a process), `RedisTokenLock` / `SqlTokenLock` for several. A manager over a
 * store marked `distributed` with a lock that is not logs a warning when it starts.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import type { TokenStoreError } from "./TokenError.js"

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
   * Runs `effect` while holding the lock for `key`. Implementations must re-check nothing themselves: the cache
   * re-reads the store inside the lock and renews only a token that is still stale.
   */
  readonly withLock: (
    key: string
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TokenStoreError, R>
}>() {}

/**
 * A lock for one process. The token cache already runs one renewal per key at a time within a process, so this
 * lock adds nothing to it: it says, in the layer graph, that the deployment is a single process.
 *
 * @since 0.2.0
 * @category constructors
 */
export const memory: TokenLock["Type"] = TokenLock.of({ distributed: false, withLock: () => identity })

/**
 * `memory` as a layer: for a single process (a worker, one web server) with in-memory or file-based stores.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<TokenLock> = Layer.succeed(TokenLock, memory)
