import { Session } from "@effect-atm/core/Session"
import { SessionStore, SessionStoreError, type SessionStoreOperation } from "@effect-atm/core/SessionStore"
import * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SessionStoreOptions } from "../SqlSessionStore.js"
import { describe, readAgainIfSessionEnded } from "./driverError.js"
import { migrate } from "./migration.js"

const tablePrefixPattern = /^[A-Za-z_][A-Za-z0-9_]{0,40}$/

interface Row {
  readonly id: string
  readonly payload: string
}

/** @internal */
export const make = (
  options: SessionStoreOptions = {}
): Effect.Effect<SessionStore["Type"], SessionStoreError, SqlClient.SqlClient | TokenEncryption.TokenEncryption> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const encryption = yield* TokenEncryption.TokenEncryption
    const store = sql.onDialectOrElse({ pg: () => "postgresql", sqlite: () => "sqlite", orElse: () => "sql" })
    const fail = (operation: SessionStoreOperation, reason: string) =>
      new SessionStoreError({ store, operation, reason })
    if (store === "sql") {
      return yield* fail("start", "the SqlClient is neither SQLite nor PostgreSQL, the dialects this store supports")
    }
    const prefix = options.tablePrefix ?? "effect_atm_"
    if (!tablePrefixPattern.test(prefix)) {
      return yield* fail(
        "start",
        `the table prefix "${prefix}" must be a letter or '_' followed by up to 40 letters, digits or '_'`
      )
    }
    const sessions = sql(`${prefix}sessions`)
    const claims = sql(`${prefix}session_claims`)

    const run = <A>(operation: SessionStoreOperation, effect: Effect.Effect<A, SqlError>) =>
      effect.pipe(
        Effect.mapError((error) => fail(operation, describe(error))),
        Effect.withSpan(`SqlSessionStore.${operation}`, {
          attributes: { "db.system.name": store },
          captureStackTrace: false
        })
      )

    // a read whose session ended under it (a failover) runs again on a live connection
    const read = <A>(operation: SessionStoreOperation, effect: Effect.Effect<A, SqlError>) =>
      run(operation, readAgainIfSessionEnded(effect))

    if (options.migrate ?? true) {
      const ddl = Effect.gen(function*() {
        yield* sql`CREATE TABLE IF NOT EXISTS ${sessions} (
          id TEXT PRIMARY KEY,
          subject TEXT NOT NULL,
          sid TEXT,
          payload TEXT NOT NULL,
          expires_at BIGINT NOT NULL
        )`
        yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${prefix}sessions_subject`)} ON ${sessions} (subject)`
        yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${prefix}sessions_sid`)} ON ${sessions} (sid)`
        yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${prefix}sessions_expires_at`)} ON ${sessions} (expires_at)`
        yield* sql`CREATE TABLE IF NOT EXISTS ${claims} (
          id TEXT PRIMARY KEY,
          expires_at BIGINT NOT NULL
        )`
        yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${prefix}session_claims_expires_at`)} ON ${claims} (expires_at)`
      })
      yield* run("start", migrate(sql, prefix + "sessions", ddl))
    }

    // the session (its ID token, the user's claims) sealed, bound to its id: a payload copied to another row does
    // not open there
    const codec = TokenEncryption.codec(Session, encryption)
    const context = (id: string) => `session\u001d${id}`
    const decode = (operation: SessionStoreOperation) => (row: Row) =>
      codec.decode(row.payload, context(row.id)).pipe(
        Effect.mapError((error) => fail(operation, error.message))
      )
    const decodeAll = (operation: SessionStoreOperation) => (rows: ReadonlyArray<Row>) =>
      Effect.forEach(rows, decode(operation))

    const now = Clock.currentTimeMillis

    return SessionStore.of({
      get: (id) =>
        Effect.gen(function*() {
          const rows = yield* read(
            "get",
            sql<Row>`SELECT id, payload FROM ${sessions} WHERE id = ${id} AND expires_at > ${yield* now}`
          )
          return rows.length === 0 ? Option.none() : Option.some(yield* decode("get")(rows[0]!))
        }),
      set: (session) =>
        Effect.gen(function*() {
          const payload = yield* codec.encode(session, context(session.id))
          const sid = session.providerSessionId ?? null
          yield* run(
            "set",
            sql`INSERT INTO ${sessions} (id, subject, sid, payload, expires_at)
              VALUES (${session.id}, ${session.subject}, ${sid}, ${payload}, ${session.expiresAt})
              ON CONFLICT (id) DO UPDATE SET subject = excluded.subject, sid = excluded.sid,
                payload = excluded.payload, expires_at = excluded.expires_at`
          )
        }),
      // DELETE … RETURNING: of concurrent removals, one deletes the row and gets it
      remove: (id) =>
        run("remove", sql<Row>`DELETE FROM ${sessions} WHERE id = ${id} RETURNING id, payload`).pipe(
          Effect.flatMap((rows) => rows.length === 0 ? Effect.succeedNone : Effect.asSome(decode("remove")(rows[0]!)))
        ),
      findBySubject: (subject) =>
        Effect.flatMap(now, (time) =>
          read(
            "find",
            sql<Row>`SELECT id, payload FROM ${sessions} WHERE subject = ${subject} AND expires_at > ${time}`
          )).pipe(Effect.flatMap(decodeAll("find"))),
      findByProviderSession: (sid) =>
        Effect.flatMap(now, (time) =>
          read(
            "find",
            sql<Row>`SELECT id, payload FROM ${sessions} WHERE sid = ${sid} AND expires_at > ${time}`
          )).pipe(Effect.flatMap(decodeAll("find"))),
      takeExpired: (limit) =>
        Effect.flatMap(now, (time) =>
          run(
            "takeExpired",
            sql.onDialectOrElse({
              // SKIP LOCKED: concurrent sweepers of several instances take disjoint batches
              pg: () =>
                sql<Row>`DELETE FROM ${sessions} WHERE id IN (
                  SELECT id FROM ${sessions} WHERE expires_at <= ${time}
                  ORDER BY expires_at LIMIT ${limit} FOR UPDATE SKIP LOCKED
                ) RETURNING id, payload`,
              // SQLite: one writer at a time
              orElse: () =>
                sql<Row>`DELETE FROM ${sessions} WHERE id IN (
                  SELECT id FROM ${sessions} WHERE expires_at <= ${time} ORDER BY expires_at LIMIT ${limit}
                ) RETURNING id, payload`
            })
          )).pipe(
            Effect.flatMap(decodeAll("takeExpired")),
            // the sweep also forgets claims past their time
            Effect.tap(() =>
              Effect.flatMap(now, (time) => run("takeExpired", sql`DELETE FROM ${claims} WHERE expires_at <= ${time}`))
            )
          ),
      // a new row, or one past its time taken over: the row comes back to the one caller that wrote it
      claimOnce: (key, until) =>
        Effect.flatMap(now, (time) =>
          run(
            "claim",
            sql<{ readonly id: string }>`INSERT INTO ${claims} (id, expires_at) VALUES (${key}, ${until})
              ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
              WHERE ${claims}.expires_at <= ${time}
              RETURNING id`
          )).pipe(Effect.map((rows) => rows.length === 1)),
      // only the row of this claim: one taken over since (a later expires_at) is kept
      releaseClaim: (key, until) =>
        Effect.asVoid(
          run("release", sql`DELETE FROM ${claims} WHERE id = ${key} AND expires_at = ${until}`)
        )
    })
  })
