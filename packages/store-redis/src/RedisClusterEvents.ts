/**
 * `ClusterEvents` on Redis pub/sub: instances publish on the connection the application provides
 * (`RedisConnection`) and subscribe on a duplicate of it (a subscribed Redis connection can do nothing else).
 *
 * @since 0.3.0
 */
import { ClusterEvents } from "@effect-atm/core/ClusterEvents"
import type { TokenStoreError } from "@effect-atm/core/TokenError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/redis.js"
import { RedisConnection } from "./RedisConnection.js"

/**
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /**
   * Prefix of the channel (`<prefix>events`): the instances of one application share it. Default: `effect-atm:`,
   * as the stores.
   */
  readonly prefix?: string | undefined
}

/**
 * Subscribes (failing with `TokenStoreError` when Redis cannot be reached) and unsubscribes when the scope
 * closes. After a lost connection the subscriber reconnects by itself and delivers `Resubscribed` once it listens
 * again.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<ClusterEvents["Type"], TokenStoreError, RedisConnection | Scope.Scope> =>
  Effect.flatMap(RedisConnection, (client) => internal.makeClusterEvents(client, options))

/**
 * @example
 * ```ts
 * import { ClusterEvents } from "@effect-atm/core"
 * import { RedisClusterEvents, RedisConnection } from "@effect-atm/store-redis"
 * import { Effect, Layer } from "effect"
 *
 * const EventsLive = RedisClusterEvents.layer({ prefix: "shop:" }).pipe(Layer.provide(RedisConnection.layerConfig()))
 *
 * const signOutEverywhere = (sessionId: string) =>
 *   Effect.flatMap(ClusterEvents.ClusterEvents, (events) =>
 *     events.publish(new ClusterEvents.SessionEnded({ sessionId })))
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<ClusterEvents, TokenStoreError, RedisConnection> =>
  Layer.scoped(ClusterEvents, make(options))
