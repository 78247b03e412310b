/**
 * The keyed single-flight token cache: the one mechanism behind every token the library hands out.
 *
 * - concurrent callers of one key share one renewal; different keys never wait on each other;
 * - a token is handed out only while it is fresh (see `AccessToken.isFresh`), never once it is expired;
 * - after a transient failure (see `TokenError.isTransient`) a key backs off: calls within a jittered, exponentially
 *   growing window (and at least the provider's `Retry-After`) fail fast with the same error instead of asking the
 *   provider again; the window resets on success. Other failures are neither backed off nor remembered;
 * - a token inside its renewal window that is not yet expired is still handed out while its renewal fails
 *   transiently, and the renewal is retried in the background when the backoff window ends;
 * - renewal runs in the cache's own scope, so an interrupted caller does not interrupt the others' renewal;
 * - renewals of one lock key (e.g. one user, whose resources share a refresh token) run one at a time, and each
 *   re-reads the backing store first, renewing only if the token there is still the stale (or rejected) one.
 *
 * What differs between client-credentials and user tokens is only the `Backend`: how a key is read, and how a new
 * value is obtained and stored.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { AccessToken } from "./AccessToken.js"
import * as internal from "./internal/tokenCache.js"
import type { TokenManagerClosed, TokenStoreError } from "./TokenError.js"
import type { TokenLock } from "./TokenLock.js"

/**
 * Where values of a token cache live and how new ones are obtained.
 *
 * @since 0.1.0
 * @category models
 */
export interface Backend<K, V, E> {
  /** The identity of a key: callers with equal strings share a renewal. */
  readonly keyOf: (key: K) => string
  /** Renewals with equal lock keys run one at a time (defaults to `keyOf`). */
  readonly lockKeyOf?: ((key: K) => string) | undefined
  /** Reads the current value of a key. */
  readonly read: (key: K) => Effect.Effect<Option.Option<V>, E>
  /** The access token a value holds, if any. */
  readonly accessToken: (value: V) => AccessToken | undefined
  /** Obtains a new value (given the current one, e.g. for its refresh token) and stores it. */
  readonly renew: (key: K, current: Option.Option<V>) => Effect.Effect<V, E>
  /**
   * Whether a failure may pass by itself, so that the key backs off and a still-valid token is served meanwhile.
   * Default: `TokenError.isTransient` for the library's errors, `false` for anything else.
   *
   * @since 0.2.0
   */
  readonly isTransient?: ((error: E | TokenStoreError) => boolean) | undefined
}

/**
 * How a key backs off after a transient failure: the first window is `initial`, each further failure doubles it up
 * to `max`, and each window is shortened by a random part of up to `jitter` (0 to 1) so that instances do not
 * return to the provider in step. A provider's `Retry-After` (a `retryAfter` in milliseconds on the error) makes
 * a window at least that long, up to `max` or 5 minutes, whichever is longer.
 *
 * @since 0.2.0
 * @category models
 */
export interface Backoff {
  /** The first window. Default: 1 second. */
  readonly initial?: Duration.DurationInput | undefined
  /** The longest window. Default: 30 seconds. */
  readonly max?: Duration.DurationInput | undefined
  /** The largest part of a window removed at random, from 0 (none) to 1. Default: 0.2. */
  readonly jitter?: number | undefined
}

/**
 * The backoff used when none is configured: 1 second, doubling up to 30 seconds, with 20% jitter.
 *
 * @since 0.2.0
 * @category models
 */
export const defaultBackoff: {
  readonly initial: Duration.Duration
  readonly max: Duration.Duration
  readonly jitter: number
} = internal.defaultBackoff

/**
 * @since 0.1.0
 * @category models
 */
export interface TokenCache<K, V, E> {
  /**
   * A fresh value for the key: the stored one, or a renewed one. `get` and `renew` fail with
   * `TokenManagerClosed` once the cache's scope has closed.
   */
  readonly get: (key: K) => Effect.Effect<V, E | TokenStoreError | TokenManagerClosed>
  /**
   * Renews the value for the key even though it looks fresh. With `rejected`, renews only if the stored token is
   * still that one: if someone already replaced it, the replacement is returned and nothing is requested.
   */
  readonly renew: (key: K, rejected?: AccessToken) => Effect.Effect<V, E | TokenStoreError | TokenManagerClosed>
  /**
   * Runs an effect under the renewal lock of a lock key (in this process and, with a `TokenLock`, across
   * processes): for changes that must not interleave with a renewal, such as signing a user out.
   */
  readonly withLock: (
    lockKey: string
  ) => <A, E1>(effect: Effect.Effect<A, E1>) => Effect.Effect<A, E1 | TokenStoreError>
  /** Drops the key from the in-process memo (see `Options.memoize`); the store is not touched. */
  readonly forget: (key: K) => Effect.Effect<void>
  /** Number of renewals in flight (for tests and metrics). */
  readonly inFlight: Effect.Effect<number>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Renew this long before expiry (capped at half of a token's lifetime). */
  readonly renewBefore: Duration.DurationInput
  /**
   * Keep the last value of each key in process memory and serve it without reading the backend while it is
   * fresh: a cache hit is then one clock read. Right for values that only this cache replaces (client-credentials
   * tokens); wrong where others may clear the backend (a user's sign-out in another process).
   */
  readonly memoize?: boolean | undefined
  /** Serializes renewals across processes (see `TokenLock`). */
  readonly lock?: TokenLock["Type"] | undefined
  /**
   * Backoff after transient failures (see `Backoff`); `false` asks the backend again on every call. Default:
   * `defaultBackoff`.
   *
   * @since 0.2.0
   */
  readonly backoff?: Backoff | false | undefined
}

/**
 * Makes a token cache over a backend. Renewals are forked into the scope, which interrupts them when it closes.
 *
 * The managers are built on it; build one yourself for tokens they do not cover.
 *
 * @example
 * ```ts
 * import { AccessToken, TokenCache, TokenClient, TokenEndpoint, TokenError } from "@effect-atm/core"
 * import { Effect, Option } from "effect"
 *
 * // one client-credentials client per tenant, known only at run time
 * interface Tenant {
 *   readonly id: string
 *   readonly client: TokenClient.TokenClient
 * }
 *
 * const makeTenantTokens = Effect.gen(function*() {
 *   const endpoint = yield* TokenEndpoint.TokenEndpoint
 *   const stored = new Map<string, AccessToken.AccessToken>()
 *   const cache = yield* TokenCache.make<Tenant, AccessToken.AccessToken, TokenError.TokenEndpointError>({
 *     keyOf: (tenant) => AccessToken.keyPart(tenant.id),
 *     read: (tenant) => Effect.sync(() => Option.fromNullable(stored.get(tenant.id))),
 *     accessToken: (token) => token,
 *     renew: (tenant) =>
 *       endpoint.request(tenant.client, TokenEndpoint.Grant.ClientCredentials({})).pipe(
 *         Effect.map((response) => response.accessToken),
 *         Effect.tap((token) => Effect.sync(() => stored.set(tenant.id, token)))
 *       )
 *   }, { renewBefore: "60 seconds" })
 *   return (tenant: Tenant) => cache.get(tenant) // scoped: renewals end with the scope
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <K, V, E>(
  backend: Backend<K, V, E>,
  options: Options
) => Effect.Effect<TokenCache<K, V, E>, never, Scope.Scope> = internal.make
