/**
 * Mutual exclusion for token renewal across processes. The token cache always deduplicates within a process;
 * with a shared store (Redis, SQL) several processes may hold the same user's refresh token, and a provider that
 * rotates refresh tokens revokes the whole grant when a used one comes back. A `TokenLock` makes one process at a
 * time renew a key; the others wait, then read what it stored.
 *
 * Without a `TokenLock` in the context, renewal is exclusive within the process only.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { TokenStoreError } from "./TokenError.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class TokenLock extends Context.Tag("@effect-atm/core/TokenLock")<TokenLock, {
  /**
   * Runs `effect` while holding the lock for `key`. Implementations must re-check nothing themselves: the cache
   * re-reads the store inside the lock and renews only a token that is still stale.
   */
  readonly withLock: (
    key: string
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TokenStoreError, R>
}>() {}
