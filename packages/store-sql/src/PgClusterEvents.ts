/**
 * `ClusterEvents` on PostgreSQL LISTEN/NOTIFY, over the application's `PgClient` (from `@effect/sql-pg`, which
 * listens on a connection of its own and notifies through its pool).
 *
 * @since 0.3.0
 */
import * as ClusterEvents from "@effect-atm/core/ClusterEvents"
import { TokenStoreError } from "@effect-atm/core/TokenError"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Crypto from "node:crypto"

/**
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /**
   * The channel (`<tablePrefix>events`; letters, digits and `_`): the instances of one application share it.
   * Default: `effect_atm_`, as the store's tables.
   */
  readonly tablePrefix?: string | undefined
}

const store = "postgresql"

/** Payloads that only check that LISTEN is in place; every instance ignores them. */
const probePrefix = "probe:"

/**
 * Listens (failing with `TokenStoreError` when PostgreSQL cannot be reached) until the scope closes. If the
 * listening connection fails, it listens again (every second until it can) and delivers `Resubscribed`.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<ClusterEvents.ClusterEvents["Type"], TokenStoreError, PgClient.PgClient | Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options.tablePrefix ?? "effect_atm_"
    if (!/^[A-Za-z0-9_]*$/.test(prefix)) {
      return yield* new TokenStoreError({
        store,
        operation: "start",
        transient: false,
        reason: "the option tablePrefix may hold only letters, digits and _"
      })
    }
    const channel = `${prefix}events`
    const pg = yield* PgClient.PgClient
    // pg_notify rather than PgClient.notify: NOTIFY takes no bound parameters, and that one sends its payload as $1
    const notify = (payload: string) => Effect.asVoid(pg.unsafe("SELECT pg_notify($1, $2)", [channel, payload]))
    const failed = (operation: "publish" | "subscribe") => (error: { readonly message: string }) =>
      new TokenStoreError({ store, operation, reason: error.message })

    return yield* ClusterEvents.make({
      name: store,
      distributed: true,
      publish: (payload) => Effect.mapError(notify(payload), failed("publish")),
      subscribe: ({ onMessage, onResubscribed }) =>
        Effect.gen(function*() {
          /** Listens in the scope until the connection fails; succeeds once a probe of its own came back. */
          const listen = Effect.gen(function*() {
            const probe = `${probePrefix}${Crypto.randomUUID()}`
            const listening = yield* Deferred.make<void>()
            const fiber = yield* pg.listen(channel).pipe(
              Stream.runForEach((payload) =>
                payload === probe
                  ? Deferred.succeed(listening, undefined)
                  : payload.startsWith(probePrefix)
                  ? Effect.void
                  : Effect.sync(() => onMessage(payload))
              ),
              Effect.forkScoped
            )
            // LISTEN is sent when the stream starts: notify until the probe comes back
            yield* notify(probe).pipe(
              Effect.zipRight(Effect.timeoutFail(Deferred.await(listening), {
                duration: "250 millis",
                onTimeout: () => ({ message: "LISTEN was not in place after 250 ms" })
              })),
              Effect.retry({ times: 20 }),
              Effect.tapError(() => Fiber.interrupt(fiber))
            )
            return fiber
          })

          const initial = yield* Effect.mapError(listen, failed("subscribe"))
          // after a failure, listen again and tell subscribers they may have missed events
          yield* Effect.gen(function*() {
            let current = initial
            while (true) {
              const exit = yield* Fiber.await(current)
              yield* Effect.logWarning("PgClusterEvents: the listening connection ended; listening again", exit)
              current = yield* Effect.retry(listen, Schedule.spaced(Duration.seconds(1)))
              onResubscribed()
            }
          }).pipe(Effect.forkScoped)
        })
    })
  })

/**
 * @example
 * ```ts
 * import { UserTokenStore } from "@effect-atm/core"
 * import { PgClusterEvents, SqlStore } from "@effect-atm/store-sql"
 * import { PgClient } from "@effect/sql-pg"
 * import { Layer, Redacted } from "effect"
 *
 * // the PostgreSQL store with a near cache, told of other instances' writes over LISTEN/NOTIFY
 * const StoresLive = SqlStore.layer({ tablePrefix: "shop_" }).pipe(
 *   UserTokenStore.withNearCache(),
 *   Layer.provide(PgClusterEvents.layer({ tablePrefix: "shop_" })),
 *   Layer.provide(PgClient.layer({ url: Redacted.make("postgres://app@db/app") }))
 * )
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<ClusterEvents.ClusterEvents, TokenStoreError, PgClient.PgClient> =>
  Layer.scoped(ClusterEvents.ClusterEvents, make(options))
