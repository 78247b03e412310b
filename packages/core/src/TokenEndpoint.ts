/**
 * The only module that speaks OAuth to a provider: token requests (client credentials, refresh token), revocation
 * and discovery, over openid-client and the application's `HttpClient` (so proxies, TLS settings, tracing and test
 * transports apply). Maps every failure to a typed `TokenEndpointError` (the decision table is in docs/errors.md),
 * aborts the HTTP request when the calling fiber is interrupted, enforces a timeout and bounds the response size.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type { AccessToken, TokenRequestOptions } from "./AccessToken.js"
import * as internal from "./internal/tokenEndpoint.js"
import type { TokenClientLike } from "./TokenClient.js"
import type { DiscoveryFailed, InvalidTokenResponse, Operation, TokenEndpointError } from "./TokenError.js"

/**
 * How a token is obtained: the grant and its parameters, as data. With `dpopKey` (see `DPoP`), the request
 * carries a DPoP proof made with that key (answering a `use_dpop_nonce` challenge with exactly one retry), and a
 * `DPoP` token in the response is bound to it (`AccessToken.dpopKey`).
 *
 * @since 0.1.0
 * @category models
 */
export type Grant = Data.TaggedEnum<{
  ClientCredentials: {
    readonly options?: TokenRequestOptions | undefined
    readonly dpopKey?: Redacted.Redacted<string> | undefined
  }
  RefreshToken: {
    readonly refreshToken: Redacted.Redacted<string>
    readonly options?: TokenRequestOptions | undefined
    readonly dpopKey?: Redacted.Redacted<string> | undefined
  }
  /**
   * The code of an authorization response (OpenID Connect code flow with PKCE). `callbackUrl` is the redirect URI
   * with the response's query; openid-client checks the response (`state`, `iss`) and the ID token (`nonce`,
   * `iss`, `aud`, expiry) before the tokens are handed back. Needs an `issuer` (an ID token is always expected).
   *
   * @since 0.3.0
   */
  /**
   * Token exchange (RFC 8693): a token for another audience, resource or scope in exchange for `subjectToken` (by
   * default an access token), optionally on behalf of `actorToken`. `options` carry the target: `resource`,
   * `scope`, and `parameters` such as `audience` or `requested_token_type`.
   *
   * @since 0.3.0
   */
  TokenExchange: {
    readonly subjectToken: Redacted.Redacted<string>
    readonly subjectTokenType?: string | undefined
    readonly actorToken?: Redacted.Redacted<string> | undefined
    readonly actorTokenType?: string | undefined
    readonly options?: TokenRequestOptions | undefined
    readonly dpopKey?: Redacted.Redacted<string> | undefined
  }
  AuthorizationCode: {
    readonly callbackUrl: URL
    readonly codeVerifier: Redacted.Redacted<string>
    readonly expectedState: string
    readonly expectedNonce: Redacted.Redacted<string>
    readonly options?: TokenRequestOptions | undefined
    /** A public client's refresh token is bound to this key from the code exchange on (RFC 9449 §5). */
    readonly dpopKey?: Redacted.Redacted<string> | undefined
  }
}>

/**
 * @since 0.1.0
 * @category constructors
 */
export const Grant = Data.taggedEnum<Grant>()

/**
 * A successful token response, decoded and checked: the access token (its expiry is `expires_in` counted from
 * when the request was sent), and the refresh and ID tokens when the provider sent them.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenResponse {
  readonly accessToken: AccessToken
  readonly refreshToken?: Redacted.Redacted<string> | undefined
  readonly idToken?: Redacted.Redacted<string> | undefined
  /**
   * The claims of the ID token, when openid-client validated it (the `AuthorizationCode` grant: signature source,
   * `iss`, `aud`, `nonce`, expiry).
   *
   * @since 0.3.0
   */
  readonly idTokenClaims?: Readonly<Record<string, unknown>> | undefined
}

/**
 * The subset of a provider's metadata the library uses.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerMetadata {
  readonly issuer: string
  readonly token_endpoint?: string | undefined
  readonly revocation_endpoint?: string | undefined
  readonly [key: string]: unknown
}

/**
 * The managers call it for you; call it directly for a grant they do not make.
 *
 * @example
 * ```ts
 * import { TokenClient, TokenEndpoint } from "@effect-atm/core"
 * import { Effect, Redacted } from "effect"
 *
 * // a one-off token for an administrative task, not cached
 * const adminToken = Effect.gen(function*() {
 *   const endpoint = yield* TokenEndpoint.TokenEndpoint
 *   const client = yield* TokenClient.decode({
 *     issuer: "https://login.example.com",
 *     clientId: "admin-cli",
 *     clientSecret: Redacted.make("…")
 *   })
 *   const response = yield* endpoint.request(
 *     client,
 *     TokenEndpoint.Grant.ClientCredentials({ options: { scope: "users.admin" } })
 *   )
 *   return response.accessToken // AccessToken: expiry computed, the secret Redacted
 * })
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class TokenEndpoint extends Context.Tag("@effect-atm/core/TokenEndpoint")<TokenEndpoint, {
  /** Requests a token with the given grant. */
  readonly request: (client: TokenClientLike, grant: Grant) => Effect.Effect<TokenResponse, TokenEndpointError>
  /** Revokes a token (RFC 7009). Succeeds when the provider has no revocation endpoint: there is nothing to do. */
  readonly revoke: (
    client: TokenClientLike,
    token: Redacted.Redacted<string>,
    hint: "refresh_token" | "access_token"
  ) => Effect.Effect<void, TokenEndpointError>
  /**
   * The provider's metadata for a client: discovered once per issuer (failures are not remembered), or built from
   * `tokenEndpoint` and `revocationEndpoint` when those are configured. For a client with a certificate
   * (`clientCertificate`), the token and revocation endpoints are the discovered `mtls_endpoint_aliases` where
   * the provider lists them (RFC 8705 §5).
   */
  readonly metadata: (client: TokenClientLike) => Effect.Effect<ServerMetadata, DiscoveryFailed>
  /**
   * Decodes a token response obtained elsewhere (e.g. the code exchange of a login) the way `request` does. The
   * token's expiry counts from `sentAt` (Clock milliseconds when the request was sent: the token may have been
   * issued any time after), or from now when it is not given.
   */
  readonly decode: (
    client: TokenClientLike,
    operation: Operation,
    response: internal.RawTokenResponse,
    sentAt?: number
  ) => Effect.Effect<TokenResponse, InvalidTokenResponse>
}>() {}

/**
 * When the managers discover their clients' provider metadata: `"eager"` (the default) when their layer is built,
 * so that an unreachable, mismatched or malformed issuer fails the layer with `DiscoveryFailed` at start-up;
 * `"lazy"` at the first token request (for a provider that may be down while the application starts). Clients
 * configured with a `tokenEndpoint` are never discovered.
 *
 * @since 0.3.0
 * @category models
 */
export type Discovery = "eager" | "lazy"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How long one request may take before it is aborted. Default: 10 seconds. A `UserTokens` refresh is not
   * aborted here: its callers get `TokenEndpointTimeout`, and its answer is awaited up to the manager's
   * `refreshAnswerTimeout`, since the provider may rotate the refresh token anyway.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /** The lifetime assumed when a response has no `expires_in`. Default: 5 minutes. */
  readonly defaultLifetime?: Duration.DurationInput | undefined
  /** How long discovered metadata is kept. Default: 1 hour. */
  readonly metadataTimeToLive?: Duration.DurationInput | undefined
  /**
   * The largest response body read from the provider, in bytes. A longer one is abandoned unread and the request
   * fails with `InvalidTokenResponse`. Default: 1 MiB.
   *
   * @since 0.2.0
   */
  readonly maxResponseBytes?: number | undefined
}

/**
 * Builds the token endpoint service over the application's `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<TokenEndpoint["Type"], never, HttpClient.HttpClient> =
  internal.make

/**
 * The token endpoint over openid-client and the application's `HttpClient` (e.g. `FetchHttpClient.layer` or
 * `NodeHttpClient.layerUndici`): every request to the provider — discovery, token, revocation — goes through it.
 *
 * @example
 * ```ts
 * import { TokenEndpoint } from "@effect-atm/core"
 * import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
 * import { Layer } from "effect"
 *
 * const EndpointLive = TokenEndpoint.layer({ timeout: "10 seconds" }).pipe(Layer.provide(FetchHttpClient.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<TokenEndpoint, never, HttpClient.HttpClient> =>
  Layer.effect(TokenEndpoint, make(options))

/**
 * The default: a 10 second timeout and a 5 minute default lifetime, over the application's `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDefault: Layer.Layer<TokenEndpoint, never, HttpClient.HttpClient> = layer()

/**
 * The refresh token of a successful (2xx) refresh response that was otherwise unusable (an unsupported
 * `token_type`, no `access_token`, an ID token that does not check out), when the error is such a failure: the
 * provider may have rotated the refresh token, so the caller must store this one before reporting the error, or
 * the next refresh presents a spent token and the provider revokes the grant. It is kept beside the error, not in
 * it, so that no rendering of the error shows it.
 *
 * @since 0.2.0
 * @category accessors
 */
export const rotatedRefreshToken: (error: TokenEndpointError) => Option.Option<Redacted.Redacted<string>> =
  internal.rotatedRefreshToken

/**
 * @since 0.1.0
 * @category models
 */
export type RawTokenResponse = internal.RawTokenResponse
