import type { StoreOperation, TokenStoreError } from "@effect-atm/core/TokenError"
import * as TokenLock from "@effect-atm/core/TokenLock"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { readAgainIfSessionEnded } from "./driverError.js"

/** What a PostgreSQL lease adds to `TokenLock.Lease`: the session that holds the advisory lock. */
const SqlLeaseId: unique symbol = Symbol.for("@effect-atm/store-sql/SqlLease")

/** @internal */
export interface SqlLeaseData {
  /** The client the lock was built on: a store on the same client writes through `connection`. */
  readonly sql: SqlClient.SqlClient
  /** The reserved connection whose session holds the lock: the lock lives exactly as long as this session. */
  readonly connection: SqlConnection.Connection
  /**
   * Gives the connection back to the pool (which discards a broken one), once the lease is known lost: a renewal
   * that then takes the lock again (to store a rotated refresh token) must not hold two connections, or renewals
   * as many as the pool's connections would each wait for one that none gives back.
   */
  readonly release: Effect.Effect<void>
  /** Why the lease is known lost (a statement on the session failed), once it is. */
  lost: string | undefined
}

/** @internal */
export interface SqlLease extends TokenLock.Lease {
  readonly [SqlLeaseId]: SqlLeaseData
}

const store = "postgresql"

/** The session answers, or the lease is lost (and its connection given back): a session ends with its locks. */
const probe = (data: SqlLeaseData): Effect.Effect<void, TokenStoreError> =>
  data.lost !== undefined
    ? Effect.fail(TokenLock.leaseLost({ store, reason: data.lost }))
    : Effect.catchAll(Effect.asVoid(data.connection.execute("SELECT 1", [], undefined)), (error) =>
      Effect.zipRight(data.release, Effect.fail(TokenLock.leaseLost({ store, reason: lostReason(data, error) }))))

const lostReason = (data: SqlLeaseData, error: SqlError): string =>
  data.lost ??= `the database session that held it failed: ${
    (error.cause as { message?: unknown } | undefined)?.message ?? error.message
  }`

/** @internal */
export const makeLease = (
  key: string,
  fencingToken: number,
  acquiredAt: number,
  data: SqlLeaseData
): SqlLease => ({ key, fencingToken, acquiredAt, ensureHeld: probe(data), [SqlLeaseId]: data })

/** The current fiber's lease when it is held by a session of `sql`: then writes go through that session. */
const sqlLeaseOf = (sql: SqlClient.SqlClient): Effect.Effect<SqlLeaseData | undefined> =>
  Effect.map(TokenLock.CurrentLease, (lease) => {
    if (lease._tag === "None" || !(SqlLeaseId in lease.value)) return undefined
    const data = (lease.value as SqlLease)[SqlLeaseId]
    return data.sql === sql ? data : undefined
  })

/** How the store runs a statement: its error mapping, retries and span. */
type RunStatement = <X>(
  operation: StoreOperation,
  effect: Effect.Effect<X, SqlError>
) => Effect.Effect<X, TokenStoreError>

/**
 * Runs a read on the session of the current lease of this client, if there is one and it is not known lost, else
 * on the pool: under the lock, a renewal holds one connection, the lock's. (Were its reads to take a pooled
 * connection, as many renewals as the pool has connections would each hold one and wait for another.) A read on
 * the pool whose session ends under it runs again (`readAgainIfSessionEnded`); one on the lock's session does not:
 * that session was the lease.
 *
 * @internal
 */
export const onLeaseSession = <A>(
  sql: SqlClient.SqlClient,
  operation: StoreOperation,
  body: Effect.Effect<A, SqlError>,
  run: RunStatement
): Effect.Effect<A, TokenStoreError> =>
  Effect.flatMap(sqlLeaseOf(sql), (lease) =>
    lease === undefined || lease.lost !== undefined
      ? run(operation, readAgainIfSessionEnded(body))
      : onSession(lease, run(operation, onConnection(body, lease.connection))))

/** `effect`'s statements on `connection` (as a transaction's are). */
const onConnection = <A, E, R>(effect: Effect.Effect<A, E, R>, connection: SqlConnection.Connection) =>
  Effect.provideService(effect, SqlClient.TransactionConnection, [connection, 0])

/** A failure on the lock's session may be the session's end: then the lease is said lost. */
const onSession = <A>(lease: SqlLeaseData, effect: Effect.Effect<A, TokenStoreError>) =>
  Effect.catchAll(effect, (error) => Effect.zipRight(probe(lease), Effect.fail(error)))

/**
 * Runs `body` in a transaction, fenced by the current lease. Under a lease of this client, the transaction runs on
 * the session that holds the advisory lock: it commits only while that session lives, and so while the lock is
 * held — atomically, since a session that ends rolls back what it had not committed before it lets its locks go.
 * Under another lease (a Redis lock), its `ensureHeld` is checked first. Without a lease, a plain transaction.
 *
 * @internal
 */
export const fencedTransaction = <A>(
  sql: SqlClient.SqlClient,
  operation: StoreOperation,
  body: Effect.Effect<A, SqlError>,
  run: RunStatement
): Effect.Effect<A, TokenStoreError> =>
  Effect.flatMap(sqlLeaseOf(sql), (lease) => {
    if (lease === undefined) return TokenLock.fenced(run(operation, sql.withTransaction(body)))
    if (lease.lost !== undefined) return Effect.fail(TokenLock.leaseLost({ store, reason: lease.lost }))
    const { connection } = lease
    const transaction = Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        connection.executeUnprepared("BEGIN", [], undefined),
        restore(onConnection(body, connection)).pipe(
          Effect.exit,
          Effect.flatMap((exit) =>
            Exit.isSuccess(exit)
              ? Effect.zipRight(connection.executeUnprepared("COMMIT", [], undefined), exit)
              : Effect.zipRight(Effect.ignore(connection.executeUnprepared("ROLLBACK", [], undefined)), exit)
          )
        )
      )
    )
    return onSession(lease, run(operation, transaction))
  })
