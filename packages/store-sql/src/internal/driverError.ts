import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"

/** The driver's error under an `SqlError`: its SQLSTATE or system code, and its message. */
const causeOf = (error: SqlError) => error.cause as { code?: unknown; message?: unknown } | undefined

/**
 * What a driver error says, without parameters or row data (they may hold tokens or an ID token).
 *
 * @internal
 */
export const describe = (error: SqlError): string => {
  const cause = causeOf(error)
  const code = typeof cause?.code === "string" ? `${cause.code} ` : ""
  const detail = typeof cause?.message === "string" ? `: ${cause.message.split("\n")[0]}` : ""
  return `${code}${error.message}${detail}`
}

/**
 * Whether PostgreSQL refused a transaction as a deadlock (40P01) or a serialization failure (40001): the
 * transaction did nothing and may simply be run again.
 *
 * @internal
 */
export const isTransient = (error: SqlError): boolean => {
  const code = causeOf(error)?.code
  return code === "40P01" || code === "40001"
}

/**
 * Whether a statement failed because its session ended under it: ended by an administrator or a failover
 * (57P01), by a server crash (57P02), or its connection cut. A read that failed so did nothing, and may run again.
 */
const isSessionEnded = (error: SqlError): boolean => {
  const cause = causeOf(error)
  const code = cause?.code
  return code === "57P01" || code === "57P02" || code === "ECONNRESET" || code === "EPIPE" ||
    (typeof cause?.message === "string" && /Connection terminated|not queryable/.test(cause.message))
}

/**
 * A read on the pool, run again (twice at most) when its session ended under it: the pool lets a broken
 * connection go, so the next try gets a live one — unless the broken one went back to the pool before its end was
 * seen, hence a second try. Sessions end in a failover, and every read in flight would otherwise fail.
 *
 * @internal
 */
export const readAgainIfSessionEnded = <A>(read: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> =>
  // the retry's schedule is set up only once a session has ended: on every read, `Effect.retry` would cost more
  // than the rest of the store's wrapping
  Effect.catchIf(read, isSessionEnded, () => Effect.retry(read, { while: isSessionEnded, times: 1 }))
