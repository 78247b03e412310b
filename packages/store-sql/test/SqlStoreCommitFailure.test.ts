/**
 * A transaction whose COMMIT fails (as when PostgreSQL drops the connection mid-transaction, found by the chaos
 * soak): @effect/sql makes that a defect; the store must report it as the typed, transient failure it is. A
 * write that PostgreSQL refuses as a serialization failure or a deadlock is retried, up to three times. A read
 * whose session is ended under it (a failover, an administrator) is read again on a new connection.
 */
import { TokenEncryption, UserTokenStore } from "@effect-atm/core"
import { SqlStore } from "@effect-atm/store-sql"
import { UserTokenStoreSuite } from "@effect-atm/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { dropPgTablesAfter, pgQuery, pgUrl, readWithSessionEnded, runId } from "../../../test/support/stores.js"

const { makeToken, uniqueUser } = UserTokenStoreSuite
const demo = { resource: "urn:effect-atm:demo-api" }

/** A PostgreSQL store on tables of its own (dropped when the scope closes). */
const pgStore = (prefix: string) =>
  Effect.gen(function*() {
    yield* Layer.build(dropPgTablesAfter(prefix))
    return yield* Effect.map(
      Layer.build(
        SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: prefix }).pipe(
          Layer.provide(TokenEncryption.layerPlaintext)
        )
      ),
      Context.get(UserTokenStore.UserTokenStore)
    )
  })

describe("SqlStore on PostgreSQL", () => {
  it.scoped("a COMMIT that fails is a transient TokenStoreError, not a defect, and nothing is written", () =>
    Effect.gen(function*() {
      const prefix = `t${runId()}_commit_`
      const user = uniqueUser("commit")
      const store = yield* pgStore(prefix)
      yield* store.store(user, makeToken("old"), demo)
      // a deferred constraint trigger: every statement succeeds, the COMMIT fails
      yield* Effect.addFinalizer(() => pgQuery(`DROP FUNCTION IF EXISTS ${prefix}refuse() CASCADE`).pipe(Effect.ignore))
      yield* pgQuery(
        `CREATE FUNCTION ${prefix}refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$`
      )
      yield* pgQuery(
        `CREATE CONSTRAINT TRIGGER ${prefix}at_commit AFTER INSERT OR UPDATE ON ${prefix}user_tokens
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${prefix}refuse()`
      )
      const error = yield* Effect.flip(store.store(user, makeToken("new"), demo))
      assert.strictEqual(error._tag, "TokenStoreError")
      assert.strictEqual(error.operation, "store")
      assert.isTrue(error.transient)
      assert.notInclude(error.message, "rt-new")
      const read = Option.getOrThrow(yield* store.get(user, demo))
      assert.strictEqual(Redacted.value(read.refreshToken!), "rt-old")
    }))

  /** Makes writes of the user table fail with `sqlstate` for the next `times` rows written, counted in a sequence. */
  const failWrites = (prefix: string, sqlstate: string, times: number) =>
    Effect.gen(function*() {
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(
          pgQuery(`DROP FUNCTION IF EXISTS ${prefix}conflict() CASCADE`),
          pgQuery(`DROP SEQUENCE IF EXISTS ${prefix}attempts`)
        ).pipe(Effect.ignore)
      )
      yield* pgQuery(`CREATE SEQUENCE ${prefix}attempts`)
      yield* pgQuery(
        `CREATE FUNCTION ${prefix}conflict() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
           IF nextval('${prefix}attempts') <= ${times} THEN
             RAISE EXCEPTION 'injected conflict' USING ERRCODE = '${sqlstate}';
           END IF;
           RETURN NEW;
         END $$`
      )
      yield* pgQuery(
        `CREATE TRIGGER ${prefix}conflicts BEFORE INSERT OR UPDATE ON ${prefix}user_tokens
         FOR EACH ROW EXECUTE FUNCTION ${prefix}conflict()`
      )
      return pgQuery<{ attempts: string }>(`SELECT last_value AS attempts FROM ${prefix}attempts`).pipe(
        Effect.map((rows) => Number(rows[0]!.attempts))
      )
    })

  it.scoped("a write refused as a serialization failure (40001) three times is retried, and lands on the fourth try", () =>
    Effect.gen(function*() {
      const prefix = `t${runId()}_retry_`
      const user = uniqueUser("retry")
      const store = yield* pgStore(prefix)
      const attempts = yield* failWrites(prefix, "40001", 3)
      yield* store.store(user, makeToken("new"), demo)
      assert.strictEqual(yield* attempts, 4)
      const read = Option.getOrThrow(yield* store.get(user, demo))
      assert.strictEqual(Redacted.value(read.refreshToken!), "rt-new")
    }))

  it.scoped("a deadlock (40P01) a fourth time is a transient TokenStoreError after four tries; nothing is written", () =>
    Effect.gen(function*() {
      const prefix = `t${runId()}_deadlock_`
      const user = uniqueUser("deadlock")
      const store = yield* pgStore(prefix)
      const attempts = yield* failWrites(prefix, "40P01", 4)
      const error = yield* Effect.flip(store.store(user, makeToken("new"), demo))
      assert.strictEqual(error.operation, "store")
      assert.isTrue(error.transient)
      assert.strictEqual(yield* attempts, 4)
      assert.isTrue(Option.isNone(yield* store.get(user, demo)))
    }))

  it.scoped("a read whose session is ended while it runs is read again on a new connection: the caller gets the token", () =>
    Effect.gen(function*() {
      const prefix = `t${runId()}_ended_`
      const user = uniqueUser("ended")
      const store = yield* pgStore(prefix)
      yield* store.store(user, makeToken("kept"), demo)
      const { ended, outcome } = yield* readWithSessionEnded(`${prefix}user_tokens`, store.get(user, demo))
      assert.isTrue(ended)
      const token = Option.getOrThrow(yield* outcome)
      assert.strictEqual(Redacted.value(token.refreshToken!), "rt-kept")
    }))
})
