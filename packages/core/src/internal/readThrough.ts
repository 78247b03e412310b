import * as FiberRef from "effect/FiberRef"

/**
 * Set while a fiber holds a renewal lock: what it reads there decides which refresh token is spent, so it must be
 * what the store holds now, not what this process last saw (a near cache is bypassed).
 *
 * @internal
 */
export const readThrough: FiberRef.FiberRef<boolean> = FiberRef.unsafeMake(false)
