/**
 * The user token manager: the current user's access token for given parameters, refreshed before it expires,
 * with one refresh per user and parameters at a time, and the rotated refresh token stored before anyone else may
 * refresh. Also provides `OidcEvents`, sharing the OpenID Connect client configuration.
 *
 * @example
 * ```ts
 * import { CurrentUser, TokenEndpoint, TokenLock, UserTokenStore, UserTokens } from "@effect-atm/core"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * const TokensLive = UserTokens.layer({
 *   client: { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("…") },
 *   resource: "https://api.example.com"
 * }).pipe(Layer.provide([TokenEndpoint.layerDefault, UserTokenStore.layerMemory(), TokenLock.layerMemory]))
 *
 * const program = Effect.gen(function*() {
 *   const tokens = yield* UserTokens.UserTokens
 *   return yield* tokens.get() // the current user's token for the default resource
 * }).pipe(CurrentUser.provide(new CurrentUser.User({ subject: "alice" })))
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { AccessToken, TokenRequestOptions } from "./AccessToken.js"
import type { User } from "./CurrentUser.js"
import * as validate from "./internal/options.js"
import * as internal from "./internal/userTokens.js"
import { OidcEvents } from "./OidcEvents.js"
import type * as TokenCache from "./TokenCache.js"
import type { TokenClient } from "./TokenClient.js"
import type { Discovery, TokenEndpoint } from "./TokenEndpoint.js"
import type {
  DiscoveryFailed,
  InvalidClientConfiguration,
  NoCurrentUser,
  SignInRequired,
  TokenEndpointError,
  TokenManagerClosed,
  TokenStoreError
} from "./TokenError.js"
import { layerMemory as tokenLockMemory, type TokenLock } from "./TokenLock.js"
import * as UserTokenStore from "./UserTokenStore.js"

/**
 * Every way a user token can fail to come.
 *
 * @since 0.1.0
 * @category errors
 */
export type UserTokenError =
  | TokenEndpointError
  | TokenStoreError
  | SignInRequired
  | NoCurrentUser
  | TokenManagerClosed

/**
 * @since 0.1.0
 * @category tags
 */
export class UserTokens extends Context.Tag("@effect-atm/core/UserTokens")<UserTokens, {
  /** The current user's access token for the parameters (default resource unless given). */
  readonly get: (options?: UserTokens.GetOptions) => Effect.Effect<AccessToken, UserTokenError>
  /** Replaces a token an API rejected (once: if it was already replaced, returns the replacement). */
  readonly renew: (
    rejected: AccessToken,
    options?: UserTokens.GetOptions
  ) => Effect.Effect<AccessToken, UserTokenError>
  /** `get` for an explicit user rather than the current one. */
  readonly getFor: (
    user: User,
    options?: UserTokens.GetOptions
  ) => Effect.Effect<AccessToken, Exclude<UserTokenError, NoCurrentUser>>
  /** `renew` for an explicit user rather than the current one. */
  readonly renewFor: (
    user: User,
    rejected: AccessToken,
    options?: UserTokens.GetOptions
  ) => Effect.Effect<AccessToken, Exclude<UserTokenError, NoCurrentUser>>
  /** Revokes the current user's refresh token at the provider and removes it from the store. */
  readonly revokeRefreshToken: Effect.Effect<void, TokenEndpointError | TokenStoreError | NoCurrentUser>
}>() {}

/**
 * @since 0.2.0
 * @category models
 */
export declare namespace UserTokens {
  /**
   * Which of the user's tokens to get: the resource (default: the layer's `resource`), the scope, and further
   * token-request parameters sent on refresh (e.g. `audience`). Each is part of the key: tokens for different
   * options are stored and refreshed apart.
   *
   * @since 0.2.0
   * @category models
   */
  export interface GetOptions extends TokenRequestOptions {
    /** Refresh even if the stored access token is fresh. */
    readonly forceRenewal?: boolean | undefined
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The OpenID Connect client the user signed in with (its refresh tokens are issued to it). */
  readonly client: typeof TokenClient.Encoded | TokenClient
  /** The resource a token is for when the caller names none (and that the login's token is stored under). */
  readonly resource?: string | undefined
  /** Refresh this long before expiry (capped at half the token's lifetime). Default: 60 seconds. */
  readonly renewBefore?: Duration.DurationInput | undefined
  /**
   * How a user's token backs off after the provider failed transiently: calls fail fast with the same error (or
   * get the still-valid token) instead of asking again. `false` turns it off. Default:
   * `TokenCache.defaultBackoff`.
   *
   * @since 0.2.0
   */
  readonly backoff?: TokenCache.Backoff | false | undefined
  /**
   * How long a refresh request that was sent is awaited: past the `TokenEndpoint`'s `timeout`, callers stop waiting
   * (they get the still-valid token, or `TokenEndpointTimeout` as before) but the request goes on, holding the
   * user's renewal lock, until its answer arrives or this much time has passed since it was sent. The provider may
   * have rotated the refresh token when it answers late: the answer is stored rather than abandoned, since the next
   * refresh would present a spent refresh token and the provider would revoke the user's grant. Until the
   * request ends, calls for its tokens fail at once with that `TokenEndpointTimeout` (or get the still-valid
   * token). Closing the layer's scope aborts it. A value no longer than the endpoint's `timeout` turns this off (the
   * refresh is aborted at that timeout, as before). Default: 60 seconds.
   *
   * @since 0.3.0
   */
  readonly refreshAnswerTimeout?: Duration.DurationInput | undefined
  /**
   * When the clients' provider metadata is discovered: `"eager"` (the default) as the layer is built, so that an
   * unreachable, mismatched or malformed issuer fails the layer with `DiscoveryFailed` at start-up; `"lazy"` at
   * the first request (when the application must start while the provider is down).
   *
   * @since 0.3.0
   */
  readonly discovery?: Discovery | undefined
  /**
   * Whether the ID token of a sign-in or a refresh is kept in the `UserTokenStore` with the user's other tokens.
   * Default: false. Nothing in the library reads it there: APIs are called with the access token and refreshes
   * made with the refresh token, and a login keeps the ID token it needs for sign-out (`id_token_hint`) in its own
   * session, as `@effect-atm/oidc-login` does. An ID token is personal data and the largest of a user's tokens
   * (about 40 % of a user's bytes in the memory store, and as much of every encrypted row in a shared store): keep
   * it only where your application reads `UserToken.idToken` from the store.
   *
   * @since 0.3.0
   */
  readonly keepIdToken?: boolean | undefined
}

/**
 * Builds the manager and the OIDC events over a `TokenEndpoint`, a `UserTokenStore` and a `TokenLock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<
  { readonly tokens: UserTokens["Type"]; readonly events: OidcEvents["Type"] },
  InvalidClientConfiguration | DiscoveryFailed,
  TokenEndpoint | UserTokenStore.UserTokenStore | TokenLock | Scope.Scope
> = internal.make

/**
 * `UserTokens` and `OidcEvents` over the `UserTokenStore` and `TokenLock` in the context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  UserTokens | OidcEvents,
  InvalidClientConfiguration | DiscoveryFailed,
  TokenEndpoint | UserTokenStore.UserTokenStore | TokenLock
> =>
  Layer.scopedContext(
    internal.make(options).pipe(
      Effect.map(({ events, tokens }) => Context.make(UserTokens, tokens).pipe(Context.add(OidcEvents, events)))
    )
  )

/**
 * `layer` for one process, with an in-memory store and the process-local lock.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory = (
  options: Options & { readonly store?: UserTokenStore.MemoryOptions | undefined }
): Layer.Layer<UserTokens | OidcEvents, InvalidClientConfiguration | DiscoveryFailed, TokenEndpoint> =>
  Layer.unwrapEffect(
    // the store's options are checked here, where a typed error can name them
    Effect.as(
      validate.memoryStore("UserTokens", options.store),
      layer(options).pipe(Layer.provide([UserTokenStore.layerMemory(options.store), tokenLockMemory]))
    )
  )
