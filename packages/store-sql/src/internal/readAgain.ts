import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"

/**
 * Whether a statement failed because its session ended under it: ended by an administrator or a failover
 * (57P01), by a server crash (57P02), or its connection cut. A read that failed so did nothing, and may run again.
 */
const isSessionEnded = (error: SqlError): boolean => {
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined
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
