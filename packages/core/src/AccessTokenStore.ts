/**
 * Where client-credentials tokens live between calls. In memory by default (one process); a shared layer (Redis)
 * lets several instances share one token per key instead of each requesting its own.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type AccessToken, isSameToken } from "./AccessToken.js"
import type { TokenStoreError } from "./TokenError.js"
import * as TokenLock from "./TokenLock.js"

/**
 * Keys are made by the client-credentials manager (client name and parameters); a store keeps what it is given.
 * Implement it for a backend of your own — `remove` with `ifToken` must compare and remove atomically, and entries
 * expire with their token on the Effect `Clock` — and check it with the conformance suite.
 *
 * @example
 * ```ts
 * // test/MyAccessTokenStore.test.ts
 * import type { AccessTokenStore } from "@effect-atm/core"
 * import { AccessTokenStoreSuite } from "@effect-atm/testing"
 * import type { Layer } from "effect"
 *
 * declare const MyAccessTokenStoreLive: Layer.Layer<AccessTokenStore.AccessTokenStore>
 *
 * AccessTokenStoreSuite.run("MyAccessTokenStore", MyAccessTokenStoreLive)
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class AccessTokenStore extends Context.Tag("@effect-atm/core/AccessTokenStore")<AccessTokenStore, {
  /**
   * Whether several processes share what this store holds (Redis). The client-credentials manager then warns at
   * start-up unless its `TokenLock` is distributed too (each process would request its own token).
   */
  readonly distributed?: boolean | undefined
  readonly get: (key: string) => Effect.Effect<Option.Option<AccessToken>, TokenStoreError>
  readonly set: (key: string, token: AccessToken) => Effect.Effect<void, TokenStoreError>
  /** Removes the token for the key; with `ifToken`, only if it is still that token. */
  readonly remove: (key: string, ifToken?: AccessToken) => Effect.Effect<void, TokenStoreError>
}>() {}

/**
 * An in-memory store holding at most `capacity` tokens (default 10,000); expired tokens are dropped first when it
 * is full, then the least recently written.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (options?: { readonly capacity?: number | undefined }): AccessTokenStore["Type"] => {
  const capacity = options?.capacity ?? 10_000
  const tokens = new Map<string, AccessToken>()
  const evict = (now: number) => {
    for (const [key, token] of tokens) {
      if (token.expiresAt <= now) tokens.delete(key)
    }
    // Map iteration is insertion order: the first key is the least recently written
    while (tokens.size >= capacity) tokens.delete(tokens.keys().next().value!)
  }
  return {
    get: (key) => Effect.sync(() => Option.fromNullable(tokens.get(key))),
    set: (key, token) =>
      TokenLock.fenced(Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          tokens.delete(key)
          if (tokens.size >= capacity) evict(now)
          tokens.set(key, token)
        }))),
    remove: (key, ifToken) =>
      Effect.sync(() => {
        const current = tokens.get(key)
        if (current !== undefined && (ifToken === undefined || isSameToken(current, ifToken))) tokens.delete(key)
      })
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: { readonly capacity?: number | undefined }): Layer.Layer<AccessTokenStore> =>
  Layer.sync(AccessTokenStore, () => makeMemory(options))
