/**
 * A transaction whose COMMIT fails (as when PostgreSQL drops the connection mid-transaction, found by the chaos
 * soak): @effect/sql makes that a defect; the store must report it as the typed, transient failure it is.
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
import { dropPgTablesAfter, pgQuery, pgUrl, runId } from "../../../test/support/stores.js"

const { makeToken, uniqueUser } = UserTokenStoreSuite
const demo = { resource: "urn:effect-atm:demo-api" }

describe("SqlStore on PostgreSQL", () => {
  it.scoped("a COMMIT that fails is a transient TokenStoreError, not a defect, and nothing is written", () =>
    Effect.gen(function*() {
      const prefix = `t${runId()}_commit_`
      const user = uniqueUser("commit")
      yield* Layer.build(dropPgTablesAfter(prefix))
      const store = yield* Effect.map(
        Layer.build(
          SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: prefix }).pipe(
            Layer.provide(TokenEncryption.layerPlaintext)
          )
        ),
        Context.get(UserTokenStore.UserTokenStore)
      )
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
})
