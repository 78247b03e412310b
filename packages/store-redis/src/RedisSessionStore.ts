/**
 * The `SessionStore` in Redis, shared by every instance: one hash per session holding the session sealed with the
 * `TokenEncryption` in the context (it holds the ID token and the user's claims), index sets by subject and by the
 * provider's `sid`, and a sorted set by expiry. Every read checks the expiry on the Effect `Clock`; an expired
 * session stays (for `retention`) until `takeExpired` hands it to a sweeper, which revokes its tokens. Removal and
 * `takeExpired` are Lua scripts: of concurrent callers, one gets each session; so are `claimOnce` (a key per claim,
 * expiring with it) and `releaseClaim` (deletes the key if it still holds this claim's `until`). Needs Redis 7
 * (`PEXPIRE … GT`) and a standalone Redis (or keys in one hash slot).
 *
 * @since 0.3.0
 */
import { SessionStore } from "@effect-atm/core/SessionStore"
import * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "./internal/redisSessionStore.js"
import * as RedisConnection from "./RedisConnection.js"

/**
 * @since 0.3.0
 * @category models
 */
export interface SessionStoreOptions {
  /** Prefix of every key (`<prefix>session:<id>`, `<prefix>sessions:…`). Default: `effect-atm:`. */
  readonly prefix?: string | undefined
  /**
   * How long an expired session is kept for `takeExpired` (the sweep that revokes its tokens) before Redis drops
   * it. Default: 1 day.
   */
  readonly retention?: Duration.DurationInput | undefined
}

/**
 * The store over the connection and the `TokenEncryption` in the context.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (
  options: SessionStoreOptions = {}
): Effect.Effect<SessionStore["Type"], never, RedisConnection.RedisConnection | TokenEncryption.TokenEncryption> =>
  Effect.zipWith(
    RedisConnection.RedisConnection,
    TokenEncryption.TokenEncryption,
    (client, encryption) => internal.make(client, options, encryption)
  )

/**
 * @example
 * ```ts
 * import { TokenEncryption } from "@effect-atm/core"
 * import { RedisConnection, RedisSessionStore } from "@effect-atm/store-redis"
 * import { Layer } from "effect"
 *
 * const SessionStoreLive = RedisSessionStore.layer({ prefix: "my-app:" }).pipe(
 *   Layer.provide(RedisConnection.layerConfig()),
 *   Layer.provide(TokenEncryption.layerConfig())
 * )
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (
  options?: SessionStoreOptions
): Layer.Layer<SessionStore, never, RedisConnection.RedisConnection | TokenEncryption.TokenEncryption> =>
  Layer.effect(SessionStore, make(options))
