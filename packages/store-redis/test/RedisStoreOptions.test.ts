import { TokenEncryption, type TokenError } from "@effect-atm/core"
import { RedisConnection, RedisStore, RedisTokenLock } from "@effect-atm/store-redis"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"

const url = "redis://127.0.0.1:6379"

/** The layer fails with a typed, permanent TokenStoreError whose message names the option. */
const failsNaming = <A>(layer: Layer.Layer<A, TokenError.TokenStoreError>, field: string) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer)))
    assert.isTrue(Exit.isFailure(exit), `a bad ${field} was accepted`)
    if (Exit.isSuccess(exit)) return
    assert.isFalse(Cause.isDie(exit.cause), "a typed failure, not a defect")
    const error = Cause.failureOption(exit.cause)
    assert.isTrue(error._tag === "Some" && error.value._tag === "TokenStoreError")
    if (error._tag === "Some") {
      assert.include(error.value.message, `the option ${field}`)
      assert.isFalse(error.value.transient, "retrying a bad option cannot help")
    }
  })

const bad = [["unparseable", "soon"], ["negative", -1], ["NaN", Number.NaN]] as const

describe("RedisStore options", () => {
  for (const [what, timeToLive] of [...bad, ["zero", 0]] as const) {
    it.effect(`a time to live that is ${what} fails the layer with a TokenStoreError naming it`, () =>
      failsNaming(
        RedisStore.layer({ url, prefix: "options-test:", timeToLive: timeToLive as never }).pipe(
          Layer.provide(TokenEncryption.layerPlaintext)
        ),
        "timeToLive"
      ))
  }

  for (const field of ["commandTimeout", "connectTimeout"] as const) {
    for (const [what, value] of [...bad, ["zero", 0]] as const) {
      it.effect(`a ${field} that is ${what} fails the connection layer naming it`, () =>
        failsNaming(RedisConnection.layer({ url, [field]: value as never }), field))
    }
  }

  for (const [field, values] of [["leaseTime", [...bad, ["zero", 0]]], ["lockTimeout", bad]] as const) {
    for (const [what, value] of values) {
      it.effect(`a ${field} that is ${what} fails the lock layer (alone or in RedisStore.layer) naming it`, () =>
        Effect.gen(function*() {
          yield* failsNaming(
            RedisTokenLock.layer({ [field]: value as never }).pipe(Layer.provide(RedisConnection.layer({ url }))),
            field
          )
          yield* failsNaming(
            RedisStore.layer({ url, prefix: "options-test:", [field]: value as never }).pipe(
              Layer.provide(TokenEncryption.layerPlaintext)
            ),
            field
          )
        }))
    }
  }

  it.effect("valid durations are accepted, a lock timeout of zero too (one attempt)", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(
        RedisStore.layer({
          url,
          prefix: "options-test:",
          timeToLive: "30 days",
          leaseTime: 5_000,
          lockTimeout: 0,
          commandTimeout: "3 seconds",
          connectTimeout: "1 second"
        }).pipe(Layer.provide(TokenEncryption.layerPlaintext))
      )))
      assert.isTrue(Exit.isSuccess(exit))
    }))
})
