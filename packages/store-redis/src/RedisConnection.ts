/**
 * The connection to Redis the stores and the lock share: an ioredis client as a scoped resource (connected when
 * the layer is built, quit when it is released), configured to fail fast rather than hang — no offline queue, a
 * timeout on every command, no replay of unanswered commands — and to reconnect in the background, so that work
 * resumes when Redis is back.
 *
 * @since 0.1.0
 */
import type { TokenStoreError } from "@effect-atm/core/TokenError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { Redis, RedisOptions } from "ioredis"
import * as internal from "./internal/redis.js"

/**
 * The ioredis client. The stores take it from the context, so that an application can share it.
 *
 * @example
 * ```ts
 * import { RedisConnection } from "@effect-atm/store-redis"
 * import { Effect } from "effect"
 *
 * // a readiness check on the connection the token stores use
 * const ready = Effect.flatMap(RedisConnection.RedisConnection, (redis) => Effect.tryPromise(() => redis.ping()))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class RedisConnection extends Context.Tag("@effect-atm/store-redis/RedisConnection")<RedisConnection, Redis>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface ConnectionOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…`. Default: `redis://127.0.0.1:6379`. */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /** ioredis options (host, port, password, tls, …); they override the defaults below. */
  readonly options?: RedisOptions | undefined
  /** How long one command may take before it fails with `TokenStoreError`. Default: 2 seconds. */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** How long connecting may take. Default: 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
}

/**
 * Connects (failing with `TokenStoreError` when Redis cannot be reached) and quits when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: ConnectionOptions) => Effect.Effect<Redis, TokenStoreError, Scope.Scope> =
  internal.makeConnection

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: ConnectionOptions): Layer.Layer<RedisConnection, TokenStoreError> =>
  Layer.scoped(RedisConnection, make(options))

/**
 * Reads `URL` (default `redis://127.0.0.1:6379`), `COMMAND_TIMEOUT` and `CONNECT_TIMEOUT` (nested under `REDIS`
 * by `layerConfig`: `REDIS_URL`, ...).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<ConnectionOptions> = Config.all({
  url: Config.redacted("URL").pipe(Config.withDefault(undefined)),
  commandTimeout: Config.duration("COMMAND_TIMEOUT").pipe(Config.withDefault(internal.defaults.commandTimeout)),
  connectTimeout: Config.duration("CONNECT_TIMEOUT").pipe(Config.withDefault(internal.defaults.connectTimeout))
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: Config.Config<ConnectionOptions>
): Layer.Layer<RedisConnection, TokenStoreError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(options ?? Config.nested(config, "REDIS"), layer))
