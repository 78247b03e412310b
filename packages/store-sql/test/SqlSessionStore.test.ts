import { SessionStore, TokenEncryption } from "@effect-atm/core"
import { SqlSessionStore } from "@effect-atm/store-sql"
import { SessionStoreSuite } from "@effect-atm/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Path from "node:path"
import {
  encryption,
  keys,
  pgQuery,
  pgUrl,
  readWithSessionEnded,
  removeDirAfter,
  runId,
  sqliteQuery,
  tempDir
} from "../../../test/support/stores.js"

const id = runId()

const dropSessionsAfter = (prefix: string) =>
  Layer.scopedDiscard(
    Effect.addFinalizer(() =>
      pgQuery(`DROP TABLE IF EXISTS ${prefix}sessions, ${prefix}session_claims`).pipe(Effect.ignore)
    )
  )

const sqlite = (filename: string) => SqlSessionStore.layer().pipe(Layer.provide(SqliteClient.layer({ filename })))

const pg = (prefix: string) =>
  SqlSessionStore.layer({ tablePrefix: prefix }).pipe(
    Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl) })),
    Layer.provide(dropSessionsAfter(prefix))
  )

const suiteDir = tempDir("sql-sessions")
SessionStoreSuite.run(
  "SQLite",
  sqlite(Path.join(suiteDir, "plain.db")).pipe(
    Layer.provide(TokenEncryption.layerPlaintext),
    Layer.provide(removeDirAfter(suiteDir))
  )
)
SessionStoreSuite.run(
  "PostgreSQL, encrypted",
  pg(`t_${id}_sess_`).pipe(Layer.provide(encryption({ key: { key: keys.a } })))
)

describe("SqlSessionStore", () => {
  it.scoped("encrypted: the ID token and the claims are not in the row; lookups still work", () =>
    Effect.gen(function*() {
      const dir = tempDir("sql-sessions-enc")
      const filename = Path.join(dir, "enc.db")
      const context = yield* Layer.build(
        sqlite(filename).pipe(
          Layer.provide(encryption({ key: { key: keys.a } })),
          Layer.provide(removeDirAfter(dir))
        )
      )
      const store = Context.get(context, SessionStore.SessionStore)
      const session = SessionStoreSuite.makeSession({ sid: "sid-enc", now: Date.now() })
      yield* store.set(session)
      const rows = yield* sqliteQuery<{ payload: string; subject: string; sid: string }>(
        filename,
        "SELECT payload, subject, sid FROM effect_atm_sessions"
      )
      assert.strictEqual(rows.length, 1)
      assert.notInclude(rows[0]!.payload, `id-${session.id}`, "the ID token is in clear")
      assert.notInclude(rows[0]!.payload, "alice@example.com", "the claims are in clear")
      assert.strictEqual(rows[0]!.sid, "sid-enc")
      assert.deepStrictEqual((yield* store.findByProviderSession("sid-enc")).map((s) => s.id), [session.id])
      assert.isTrue(Option.isSome(yield* store.get(session.id)))
    }))

  it.scoped("PostgreSQL: a read whose session is ended while it runs is read again on a new connection", () =>
    Effect.gen(function*() {
      const prefix = `t_${runId()}_sess_ended_`
      const store = Context.get(
        yield* Layer.build(pg(prefix).pipe(Layer.provide(TokenEncryption.layerPlaintext))),
        SessionStore.SessionStore
      )
      const session = SessionStoreSuite.makeSession({ sid: "sid-ended", now: Date.now() })
      yield* store.set(session)
      const byId = yield* readWithSessionEnded(`${prefix}sessions`, store.get(session.id))
      assert.isTrue(byId.ended)
      assert.strictEqual(Option.getOrThrow(yield* byId.outcome).id, session.id)
      const bySid = yield* readWithSessionEnded(`${prefix}sessions`, store.findByProviderSession("sid-ended"))
      assert.isTrue(bySid.ended)
      assert.deepStrictEqual((yield* bySid.outcome).map((s) => s.id), [session.id])
    }))
})
