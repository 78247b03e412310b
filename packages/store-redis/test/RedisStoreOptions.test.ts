import { TokenEncryption } from "@effect-atm/core"
import { RedisStore } from "@effect-atm/store-redis"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"

describe("RedisStore options", () => {
  for (const [what, timeToLive] of [["unparseable", "soon"], ["negative", -1], ["zero", 0]] as const) {
    it.effect(`a time to live that is ${what} fails the layer with a TokenStoreError naming it`, () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(
          RedisStore.layer({ url: "redis://127.0.0.1:6379", prefix: "options-test:", timeToLive: timeToLive as never })
            .pipe(Layer.provide(TokenEncryption.layerPlaintext))
        )))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isSuccess(exit)) return
        assert.isFalse(Cause.isDie(exit.cause), "a typed failure, not a defect")
        const error = Cause.failureOption(exit.cause)
        assert.isTrue(error._tag === "Some" && error.value._tag === "TokenStoreError")
        if (error._tag === "Some") assert.include(error.value.message, "the option timeToLive")
      }))
  }
})
