import type { UserToken } from "../UserToken.js"
import type { UserTokenStore } from "../UserTokenStore.js"

/**
 * What a store that holds its tokens in this process (the memory store, a near cache) holds for a user and a
 * parameters key (see `parametersKey`) at `now`, read synchronously; `undefined` when it holds nothing there it can
 * vouch for. The same object for as long as the store holds the same tokens: any write, clear, expiry or
 * invalidation makes it another object (or `undefined`), so that a caller may keep what it derived from one read
 * (its freshness, a ready-made success) and check it with one comparison instead of reading again.
 *
 * @internal
 */
export type Peek = (user: string, parametersKey: string, now: number) => UserToken | undefined

/**
 * Keyed by the store's service object, not a property of it: a wrapper made by spreading a store (metrics, a test
 * that overrides `get`) is another object and has no peek, so its own `get` is never bypassed.
 */
const peeks = new WeakMap<UserTokenStore["Type"], Peek>()

/** @internal */
export const register = <S extends UserTokenStore["Type"]>(store: S, peek: Peek): S => {
  peeks.set(store, peek)
  return store
}

/** @internal */
export const of = (store: UserTokenStore["Type"]): Peek | undefined => peeks.get(store)
