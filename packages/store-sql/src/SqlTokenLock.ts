/**
 * A cluster-wide renewal lock on PostgreSQL advisory locks: the `TokenLock` for applications whose instances share a
 * PostgreSQL token store and have no Redis. One instance at a time renews a user's tokens; the others wait, then
 * read what it stored.
 *
 * @example
 * ```ts
 * import { TokenEncryption } from "@effect-atm/core"
 * import { SqlStore, SqlTokenLock } from "@effect-atm/store-sql"
 * import { PgClient } from "@effect/sql-pg"
 * import { Layer, Redacted } from "effect"
 *
 * // the user token store and its lock on one PostgreSQL pool
 * const TokenStoreLive = Layer.merge(SqlStore.layer(), SqlTokenLock.layer({ lockTimeout: "10 seconds" })).pipe(
 *   Layer.provide(PgClient.layer({ url: Redacted.make("postgres://app@db:5432/app") })),
 *   Layer.provide(TokenEncryption.layerConfig())
 * )
 * ```
 *
 * @since 0.1.0
 */
import { type StoreOperation, TokenStoreError } from "@effect-atm/core/TokenError"
import { TokenLock } from "@effect-atm/core/TokenLock"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** How long to wait for the lock before failing with `TokenStoreError`. Default: 30 seconds. */
  readonly lockTimeout?: Duration.DurationInput | undefined
}

/** The lock is held by another session: wait and try again. */
const heldElsewhere = { _tag: "HeldElsewhere" } as const

const storeError = (operation: StoreOperation) => (cause: { readonly message: string }) =>
  new TokenStoreError({ store: "postgresql", operation, reason: cause.message })

/**
 * Builds the lock over the `SqlClient` in the context, which must be PostgreSQL.
 *
 * The lock is a session-level advisory lock on a connection reserved for the renewal, taken with
 * `pg_try_advisory_lock` and polled with backoff (5 ms doubling to 100 ms): a waiter that is interrupted never leaves
 * a lock request queued on a pooled connection. If an instance dies, PostgreSQL ends its session and its locks.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<TokenLock["Type"], TokenStoreError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const isPg = sql.onDialectOrElse({ pg: () => true, orElse: () => false })
    if (!isPg) {
      return yield* new TokenStoreError({
        store: "sql",
        operation: "start",
        reason: "SqlTokenLock needs PostgreSQL (SQLite serves one process: it needs no cross-process lock)",
        transient: false
      })
    }
    const lockTimeout = Duration.decode(options?.lockTimeout ?? Duration.seconds(30))
    const poll = Schedule.exponential("5 millis").pipe(
      Schedule.union(Schedule.spaced("100 millis")),
      Schedule.upTo(lockTimeout)
    )
    return TokenLock.of({
      distributed: true,
      withLock: (key) => (effect) =>
        Effect.scoped(Effect.gen(function*() {
          const connection = yield* Effect.mapError(sql.reserve, storeError("lock"))
          let held = false
          // registered first: whatever happens next, a lock this connection got is released with the scope
          yield* Effect.addFinalizer(() =>
            held
              ? Effect.ignore(
                connection.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [key], undefined)
              )
              : Effect.void
          )
          // each attempt is atomic (a lock obtained is always recorded); the wait between attempts is interruptible
          const attempt = Effect.uninterruptible(Effect.flatMap(
            Effect.mapError(
              connection.execute("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked", [key], undefined),
              storeError("lock")
            ),
            (rows) => {
              held = rows[0]?.locked === true
              return held ? Effect.void : Effect.fail(heldElsewhere)
            }
          ))
          yield* Effect.retry(attempt, { schedule: poll, while: (error) => error._tag === "HeldElsewhere" }).pipe(
            Effect.catchTag("HeldElsewhere", () =>
              new TokenStoreError({
                store: "postgresql",
                operation: "lock",
                reason: `another instance held it for longer than ${Duration.format(lockTimeout)}`
              }))
          )
          return yield* effect
        })).pipe(Effect.withSpan("SqlTokenLock.withLock", { captureStackTrace: false }))
    })
  })

/**
 * The lock as a layer over a PostgreSQL `SqlClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<TokenLock, TokenStoreError, SqlClient.SqlClient> =>
  Layer.effect(TokenLock, make(options))
