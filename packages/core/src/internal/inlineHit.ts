import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Effectable from "effect/Effectable"
import * as Fiber from "effect/Fiber"
import * as Utils from "effect/Utils"

/** The clock of `fiber` (a `TestClock` under test). @internal */
export const clockOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>): Clock.Clock =>
  Context.get(fiber.currentDefaultServices, Clock.Clock)

/** The clock of the fiber running now (the one whose run loop called), if any. @internal */
export const currentClock = (): Clock.Clock | undefined => {
  const fiber = Fiber.getCurrentFiber()
  return fiber._tag === "Some" ? clockOf(fiber.value) : undefined
}

/**
 * A cached get with a fast path for `yield*`, the way callers write it: a generator asks an effect for its
 * iterator at the moment it runs, inside the caller's fiber, so `hitIn` can look for a hit there, with that fiber's
 * context and clock; a ready-made success is yielded in place of the effect, and `Effect.gen` takes it inline — no
 * step of the run loop at all. Run any other way, the effect is its `commit`, decided when it runs.
 *
 * @internal
 */
export abstract class InlineHit<A, E> extends Effectable.Class<A, E> {
  /** The ready-made success of a hit for the caller running in `fiber`, else `undefined`. */
  abstract hitIn(fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<A> | undefined

  override [Symbol.iterator](): Effect.EffectGenerator<Effect.Effect<A, E>> {
    const fiber = Fiber.getCurrentFiber()
    const hit = fiber._tag === "Some" ? this.hitIn(fiber.value) : undefined
    return new Utils.SingleShotGen(new Utils.YieldWrap(hit ?? this))
  }
}
