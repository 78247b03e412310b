/**
 * The bus between the instances of an application: when one instance changes or clears a user's tokens, or ends a
 * session, the others hear of it — to drop what their near cache holds for the user, and to close the session's
 * websockets. In memory for one process (`layerMemory`); across processes on Redis pub/sub
 * (`RedisClusterEvents` in `@effect-atm/store-redis`) or PostgreSQL LISTEN/NOTIFY (`PgClusterEvents` in
 * `@effect-atm/store-sql`), over the connection the application already provides.
 *
 * Delivery is at most once: a subscriber that lost its connection is told so (`Resubscribed`) when it is back,
 * and must then assume it missed events.
 *
 * @since 0.3.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import type { TokenStoreError } from "./TokenError.js"

/**
 * A user's stored tokens were written or cleared (`user` is the store key, `CurrentUser.storeKey`): whatever an
 * instance holds for the user in memory is stale.
 *
 * @since 0.3.0
 * @category events
 */
export class TokensChanged extends Schema.TaggedClass<TokensChanged>()("TokensChanged", {
  user: Schema.String
}) {}

/**
 * A sign-in session ended (sign-out, expiry, back-channel logout): every instance ends the work it runs for it
 * (websockets). `sessionId` is the session's id (`CurrentUser.User.sessionId`).
 *
 * @since 0.3.0
 * @category events
 */
export class SessionEnded extends Schema.TaggedClass<SessionEnded>()("SessionEnded", {
  sessionId: Schema.String
}) {}

/**
 * What instances tell each other.
 *
 * @since 0.3.0
 * @category events
 */
export const ClusterEvent = Schema.Union(TokensChanged, SessionEnded)

/**
 * @since 0.3.0
 * @category events
 */
export type ClusterEvent = typeof ClusterEvent.Type

/**
 * Not sent by anyone: this instance's subscription was lost and is back. Events of the gap may be missed, so a
 * subscriber drops everything it derived from them (a near cache empties itself).
 *
 * @since 0.3.0
 * @category events
 */
export class Resubscribed extends Schema.TaggedClass<Resubscribed>()("Resubscribed", {}) {}

/**
 * What a subscriber receives: an event, and whether this instance published it.
 *
 * @since 0.3.0
 * @category models
 */
export interface Delivery {
  readonly event: ClusterEvent | Resubscribed
  /** Published by this instance (it already acted on it). */
  readonly local: boolean
}

/**
 * @example
 * ```ts
 * import { ClusterEvents } from "@effect-atm/core"
 * import { Effect, Queue } from "effect"
 *
 * // log every session that ends, on whichever instance it ended
 * const watch = Effect.gen(function*() {
 *   const events = yield* ClusterEvents.ClusterEvents
 *   const deliveries = yield* events.subscribe
 *   while (true) {
 *     const { event } = yield* Queue.take(deliveries)
 *     if (event._tag === "SessionEnded") yield* Effect.log("a session ended")
 *   }
 * }).pipe(Effect.scoped)
 * ```
 *
 * @since 0.3.0
 * @category tags
 */
export class ClusterEvents extends Context.Tag("@effect-atm/core/ClusterEvents")<ClusterEvents, {
  /** Whether other processes hear what this one publishes. */
  readonly distributed: boolean
  /** Sends the event to every instance, this one included (as a `local` delivery). */
  readonly publish: (event: ClusterEvent) => Effect.Effect<void, TokenStoreError>
  /** Every delivery from now until the scope closes. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Delivery>, never, Scope.Scope>
}>() {}

/**
 * How a backend carries events: opaque strings on one channel.
 *
 * @since 0.3.0
 * @category models
 */
export interface Transport {
  /** A name for errors and logs (`redis`, `postgresql`). */
  readonly name: string
  readonly distributed: boolean
  readonly publish: (payload: string) => Effect.Effect<void, TokenStoreError>
  /**
   * Subscribes for the scope's lifetime; succeeds once messages published from now on are received. Calls
   * `onMessage` with each payload (this instance's own included), and `onResubscribed` when a lost subscription is
   * back.
   */
  readonly subscribe: (handlers: {
    readonly onMessage: (payload: string) => void
    readonly onResubscribed: () => void
  }) => Effect.Effect<void, TokenStoreError, Scope.Scope>
}

/**
 * The bus over a transport: events are encoded with the publishing instance's id, so that each delivery says
 * whether it is this instance's own. A payload that does not decode is logged and dropped.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (transport: Transport): Effect.Effect<ClusterEvents["Type"], TokenStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const instance = Crypto.randomUUID()
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<Delivery>(), PubSub.shutdown)
    const runtime = yield* Effect.runtime<never>()
    const deliver = (delivery: Delivery) => Runtime.runSync(runtime)(PubSub.publish(hub, delivery))
    yield* transport.subscribe({
      onMessage: (payload) => {
        const decoded = decodeEnvelope(payload)
        if (decoded._tag === "Left") {
          // another version of the library, or something else on the channel: nothing to act on
          Runtime.runFork(runtime)(
            Effect.logWarning(`ClusterEvents: dropped a ${transport.name} message that is not an event`)
          )
          return
        }
        deliver({ event: decoded.right.event, local: decoded.right.origin === instance })
      },
      onResubscribed: () => deliver({ event: new Resubscribed(), local: false })
    })
    return ClusterEvents.of({
      distributed: transport.distributed,
      publish: (event) => Effect.suspend(() => transport.publish(encodeEnvelope({ origin: instance, event }))),
      subscribe: PubSub.subscribe(hub)
    })
  })

/** On the wire: the event and the instance that published it. */
const Envelope = Schema.parseJson(Schema.Struct({ origin: Schema.String, event: ClusterEvent }))
const encodeEnvelope = Schema.encodeSync(Envelope)
const decodeEnvelope = Schema.decodeUnknownEither(Envelope)

/**
 * One process: events reach this process's subscribers only.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<ClusterEvents["Type"], never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(PubSub.unbounded<Delivery>(), PubSub.shutdown),
  (hub) =>
    ClusterEvents.of({
      distributed: false,
      // one process: every event is this instance's own
      publish: (event) => Effect.asVoid(PubSub.publish(hub, { event, local: true })),
      subscribe: PubSub.subscribe(hub)
    })
)

/**
 * @since 0.3.0
 * @category layers
 */
export const layerMemory: Layer.Layer<ClusterEvents> = Layer.scoped(ClusterEvents, makeMemory)

/**
 * The bus over a transport of your own (a message broker the application already runs).
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (transport: Transport): Layer.Layer<ClusterEvents, TokenStoreError> =>
  Layer.scoped(ClusterEvents, make(transport))
