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
import { decodeDuration } from "@effect-atm/core/TokenClient"
import { type StoreOperation, TokenStoreError } from "@effect-atm/core/TokenError"
import { CurrentLease, TokenLock } from "@effect-atm/core/TokenLock"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as lease from "./internal/lease.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How long to wait for the lock before failing with `TokenStoreError`. Default: 30 seconds. An invalid duration
   * fails the layer with a `TokenStoreError` naming the option.
   */
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
 * The lease is that session: it is held as long as the session lives, and lost with it (a connection cut, a
 * terminated backend). A `SqlStore` on the same `SqlClient` makes the writes of a renewal on that very session, so
 * that they commit only while the lock is held, and its reads there too; its fencing token is the id of the
 * transaction that took the lock (`txid_current()`), greater for every later acquisition. A renewal thus holds
 * one connection of the pool, and gives it back as soon as its lease is found lost: any number of renewals at once
 * share a pool of any size (those beyond it wait for a connection), never each waiting for a second one.
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
    const decoded = decodeDuration(options?.lockTimeout ?? Duration.seconds(30))
    if (Either.isLeft(decoded)) {
      return yield* new TokenStoreError({
        store: "postgresql",
        operation: "start",
        transient: false,
        reason: `the option lockTimeout ${decoded.left}`
      })
    }
    const lockTimeout = decoded.right
    const poll = Schedule.exponential("5 millis").pipe(
      Schedule.union(Schedule.spaced("100 millis")),
      Schedule.upTo(lockTimeout)
    )
    return TokenLock.of({
      distributed: true,
      withLock: (key) => (effect) =>
        Effect.scoped(Effect.gen(function*() {
          // the session in a scope of its own, closed with the lock's, or as soon as the lease is known lost
          const session = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
          const connection = yield* Effect.mapError(Scope.extend(sql.reserve, session), storeError("lock"))
          let held = false
          // registered first: whatever happens next, a lock this connection got is released with the session
          yield* Scope.addFinalizer(
            session,
            Effect.suspend(() =>
              held
                ? Effect.ignore(
                  connection.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [key], undefined)
                )
                : Effect.void
            )
          )
          // each attempt is atomic (a lock obtained is always recorded); the wait between attempts is interruptible
          const attempt = Effect.uninterruptible(Effect.flatMap(
            Effect.mapError(
              connection.execute(
                "SELECT CASE WHEN pg_try_advisory_lock(hashtextextended($1, 0)) THEN txid_current()::text END AS fence",
                [key],
                undefined
              ),
              storeError("lock")
            ),
            (rows) => {
              const fence = rows[0]?.fence
              held = typeof fence === "string"
              return held ? Effect.succeed(Number(fence)) : Effect.fail(heldElsewhere)
            }
          ))
          const fencingToken = yield* Effect.retry(attempt, {
            schedule: poll,
            while: (error) => error._tag === "HeldElsewhere"
          }).pipe(
            Effect.catchTag("HeldElsewhere", () =>
              new TokenStoreError({
                store: "postgresql",
                operation: "lock",
                reason: `another instance held it for longer than ${Duration.format(lockTimeout)}`
              }))
          )
          const acquiredAt = yield* Clock.currentTimeMillis
          const granted = lease.makeLease(key, fencingToken, acquiredAt, {
            sql,
            connection,
            release: Scope.close(session, Exit.void),
            lost: undefined
          })
          return yield* Effect.provideService(effect, CurrentLease, Option.some(granted))
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
