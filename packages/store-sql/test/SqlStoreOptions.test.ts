import { TokenEncryption } from "@effect-atm/core"
import { SqlStore, SqlTokenLock } from "@effect-atm/store-sql"
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { pgUrl } from "../../../test/support/stores.js"

const build = (options: Partial<SqlStore.Options>) =>
  Effect.exit(Effect.scoped(Layer.build(
    SqlStore.layerSqlite({ filename: ":memory:", ...options }).pipe(Layer.provide(TokenEncryption.layerPlaintext))
  )))

describe("SqlStore options", () => {
  const invalid: ReadonlyArray<readonly [string, Partial<SqlStore.Options>, string]> = [
    ["an unparseable time to live", { timeToLive: "soon" as never }, "timeToLive"],
    ["a negative time to live", { timeToLive: -1 }, "timeToLive"],
    ["a zero time to live", { timeToLive: 0 }, "timeToLive"],
    ["a NaN purge interval", { purgeInterval: Number.NaN }, "purgeInterval"]
  ]
  for (const [what, options, field] of invalid) {
    it.effect(`${what} fails the layer with a TokenStoreError naming ${field}`, () =>
      Effect.gen(function*() {
        const exit = yield* build(options)
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isSuccess(exit)) return
        assert.isFalse(Cause.isDie(exit.cause), "a typed failure, not a defect")
        const error = Cause.failureOption(exit.cause)
        assert.strictEqual(error._tag === "Some" && error.value._tag, "TokenStoreError")
        if (error._tag === "Some") {
          assert.include(error.value.message, `the option ${field}`)
          assert.isFalse(error.value.transient)
        }
      }))
  }

  it.effect("valid durations are accepted", () =>
    Effect.gen(function*() {
      assert.isTrue(Exit.isSuccess(yield* build({ timeToLive: "30 days", purgeInterval: 0 })))
    }))

  for (const [what, lockTimeout] of [["unparseable", "soon"], ["negative", -1], ["NaN", Number.NaN]] as const) {
    it.effect(`a lock timeout that is ${what} fails SqlTokenLock.layer with a TokenStoreError naming it`, () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(
          SqlTokenLock.layer({ lockTimeout: lockTimeout as never }).pipe(
            Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl) }))
          )
        )))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isSuccess(exit)) return
        const error = Cause.failureOption(exit.cause)
        assert.isTrue(error._tag === "Some" && error.value._tag === "TokenStoreError", Cause.pretty(exit.cause))
        if (error._tag === "Some" && error.value._tag === "TokenStoreError") {
          assert.include(error.value.message, "the option lockTimeout")
          assert.isFalse(error.value.transient)
        }
      }))
  }
})
