/**
 * Where user tokens live between calls, keyed by user (see `CurrentUser.storeKey`) and parameters (resource and
 * scope). The user's access tokens for different parameters share one refresh token: storing a token with a
 * rotated refresh token replaces the refresh token for all of them, in one write.
 *
 * Implement the Tag to bring your own store; run `UserTokenStoreSuite.run` from `@effect-atm/testing` against it.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { type AccessToken, parametersKey, type TokenRequestOptions } from "./AccessToken.js"
import type { ClusterEvents } from "./ClusterEvents.js"
import * as nearCache from "./internal/nearCache.js"
import * as storePeek from "./internal/storePeek.js"
import type { TokenStoreError } from "./TokenError.js"
import * as TokenLock from "./TokenLock.js"
import * as UserTokenModule from "./UserToken.js"
import type { UserToken } from "./UserToken.js"

/**
 * Implement it for a backend of your own (the contract is on each member below) and check it with the
 * conformance suite.
 *
 * @example
 * ```ts
 * // test/MyStore.test.ts
 * import type { UserTokenStore } from "@effect-atm/core"
 * import { UserTokenStoreSuite } from "@effect-atm/testing"
 * import type { Layer } from "effect"
 *
 * declare const MyStoreLive: Layer.Layer<UserTokenStore.UserTokenStore>
 *
 * // entries expire 14 days after their last write, on the Effect Clock
 * UserTokenStoreSuite.run("MyStore", MyStoreLive, { clockExpiry: "14 days" })
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class UserTokenStore extends Context.Tag("@effect-atm/core/UserTokenStore")<UserTokenStore, {
  /**
   * Whether several processes share what this store holds (Redis, PostgreSQL). The user token manager then warns
   * at start-up unless its `TokenLock` is distributed too: without one, two processes can spend one refresh token.
   */
  readonly distributed?: boolean | undefined
  /**
   * Stores the user's tokens for the parameters: the access token (when present) for those parameters, and the
   * refresh token, ID token and client id shared by all of the user's parameters. Atomic: a reader sees the
   * access token and its refresh token together, or neither. Fenced: under a lost `TokenLock.CurrentLease` it
   * writes nothing and fails (see `TokenLock.fenced`); so does `clear`.
   */
  readonly store: (user: string, token: UserToken, params?: TokenRequestOptions) => Effect.Effect<void, TokenStoreError>
  /**
   * The user's tokens for the parameters: `None` when nothing is stored for the user; `Some` without an access
   * token when the user is known (has a refresh token) but has no access token for these parameters yet.
   */
  readonly get: (user: string, params?: TokenRequestOptions) => Effect.Effect<Option.Option<UserToken>, TokenStoreError>
  /** Removes the user's access token for the parameters, or, without parameters, everything held for the user. */
  readonly clear: (user: string, params?: TokenRequestOptions) => Effect.Effect<void, TokenStoreError>
}>() {}

/**
 * What the memory store holds for a user: the user's tokens for the parameters written last, as written (most users
 * have one set of parameters), and for any other parameters with an access token. Every token of an entry carries
 * the same refresh token, ID token, client and DPoP key: a write replaces them in all of its tokens.
 */
interface Entry {
  readonly key: string
  token: UserToken
  readonly others: Map<string, UserToken> | undefined
  /** When the entry is dropped: `timeToLive` after its last write (its refresh token is presumed dead then). */
  readonly expiresAt: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** At most this many users; the least recently written is dropped first. Default: 100,000. */
  readonly capacity?: number | undefined
  /**
   * How long a user's entry lives after its last write — set it to the provider's refresh token lifetime: after
   * that, its refresh token is dead and the entry is useless. Default: 14 days.
   */
  readonly timeToLive?: Duration.DurationInput | undefined
}

/**
 * An in-memory store (one process), bounded in users and dropping entries whose refresh token has expired.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (options?: MemoryOptions): UserTokenStore["Type"] => {
  const capacity = options?.capacity ?? 100_000
  const timeToLive = Duration.toMillis(Duration.decode(options?.timeToLive ?? Duration.days(14)))
  const users = new Map<string, Entry>()
  // an application has a few parameters (its resources and scopes): one copy of each key, not one per user
  const keys = new Map<string, string>()
  const keyOf = (params: TokenRequestOptions | undefined): string => {
    const key = parametersKey(params)
    const known = keys.get(key)
    if (known !== undefined) return known
    if (keys.size < 1_000) keys.set(key, key)
    return key
  }

  const live = (user: string, now: number): Entry | undefined => {
    const entry = users.get(user)
    if (entry !== undefined && entry.expiresAt <= now) {
      users.delete(user)
      return undefined
    }
    return entry
  }

  const tokenOf = (entry: Entry, key: string): UserToken | undefined =>
    key === entry.key ? entry.token : entry.others?.get(key)

  const store: UserTokenStore["Type"] = UserTokenStore.of({
    store: (user, token, params) =>
      TokenLock.fenced(Effect.map(Clock.currentTimeMillis, (now) => {
        const key = keyOf(params)
        const previous = live(user, now)
        let others: Map<string, UserToken> | undefined
        let own = token
        if (previous !== undefined) {
          // the user's other access tokens stay, with this write's refresh token, ID token, client and DPoP key
          const shared = UserTokenModule.shared(token)
          const carry = (accessToken: AccessToken | undefined, other: string) => {
            if (accessToken === undefined) return
            if (other === key) {
              if (token.accessToken === undefined) own = UserTokenModule.withAccessToken(shared, accessToken)
            } else {
              ;(others ??= new Map()).set(other, UserTokenModule.withAccessToken(shared, accessToken))
            }
          }
          carry(previous.token.accessToken, previous.key)
          previous.others?.forEach((other, otherKey) => carry(other.accessToken, otherKey))
        }
        // re-insert: Map order is write order, so the first key is the least recently written
        users.delete(user)
        if (users.size >= capacity) users.delete(users.keys().next().value!)
        // the token is kept as written: what `get` returns for these parameters until the next write
        users.set(user, { key, token: own, others, expiresAt: now + timeToLive })
      })),
    get: (user, params) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const entry = live(user, now)
        if (entry === undefined) return Option.none()
        // a known user without an access token for these parameters: their shared tokens alone
        return Option.some(tokenOf(entry, parametersKey(params)) ?? UserTokenModule.shared(entry.token))
      }),
    clear: (user, params) =>
      TokenLock.fenced(Effect.sync(() => {
        if (params === undefined) {
          users.delete(user)
          return
        }
        const entry = users.get(user)
        if (entry === undefined) return
        const key = parametersKey(params)
        if (key === entry.key) entry.token = UserTokenModule.shared(entry.token)
        else entry.others?.delete(key)
      }))
  })
  return storePeek.register(store, (user, key, now) => {
    const entry = users.get(user)
    return entry === undefined || entry.expiresAt <= now ? undefined : tokenOf(entry, key)
  })
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<UserTokenStore> =>
  Layer.sync(UserTokenStore, () => makeMemory(options))

/**
 * @since 0.3.0
 * @category models
 */
export interface NearCacheOptions {
  /** At most this many entries (a user's tokens for one set of parameters); the least recently filled user goes first. Default: 10,000. */
  readonly capacity?: number | undefined
  /**
   * How long an entry is served before the store is read again, whatever the bus says: the bound on staleness if
   * an event is lost. Default: 1 minute.
   */
  readonly timeToLive?: Duration.DurationInput | undefined
}

/**
 * An in-process read-through cache in front of a shared store: a get that finds the user's tokens in memory
 * costs what the memory store costs (no round trip, no decryption). Writes and clears go to the store first, then
 * to every instance over `ClusterEvents`, which drop what they hold for the user: a sign-out on one instance stops
 * the token's use on the others within the bus's latency. Under a renewal lock reads go to the store, so a refresh
 * never spends a refresh token another instance already rotated.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeNearCache: (
  store: UserTokenStore["Type"],
  options?: NearCacheOptions
) => Effect.Effect<UserTokenStore["Type"], never, ClusterEvents | Scope.Scope> = nearCache.make

/**
 * Puts a near cache in front of the `UserTokenStore` a layer provides (its other services pass through).
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, TokenEncryption, UserTokenStore } from "@effect-atm/core"
 * import { RedisClusterEvents, RedisConnection, RedisStore } from "@effect-atm/store-redis"
 * import { Layer, Redacted } from "effect"
 *
 * const StoresLive = RedisStore.layerWithoutConnection({ prefix: "shop:" }).pipe(
 *   UserTokenStore.withNearCache({ capacity: 50_000 }),
 *   Layer.provide(RedisClusterEvents.layer({ prefix: "shop:" })),
 *   Layer.provide(TokenEncryption.layerConfig())
 * )
 * const TokensLive = AccessTokenManagement.layerServer({
 *   client: { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("…") }
 * }).pipe(Layer.provide(StoresLive), Layer.provide(RedisConnection.layerConfig()))
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const withNearCache = (options?: NearCacheOptions) =>
<ROut, E, R>(
  self: Layer.Layer<ROut | UserTokenStore, E, R>
): Layer.Layer<ROut | UserTokenStore, E, R | ClusterEvents> =>
  Layer.flatMap(self, (context) =>
    Layer.scopedContext(
      Effect.map(
        nearCache.make(Context.get(context, UserTokenStore), options),
        (store) => Context.add(context, UserTokenStore, store)
      )
    ))
