import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/**
 * Runs a store's schema statements in one transaction — on PostgreSQL under a transaction advisory lock named
 * `lockName`, so that instances starting together create the tables one at a time.
 *
 * @internal
 */
export const migrate = <E, R>(sql: SqlClient.SqlClient, lockName: string, statements: Effect.Effect<void, E, R>) =>
  sql.withTransaction(
    Effect.zipRight(
      sql.onDialectOrElse({
        pg: () => sql`SELECT pg_advisory_xact_lock(hashtext(${lockName}))`,
        orElse: () => Effect.void
      }),
      statements
    )
  )
