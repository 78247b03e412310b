/**
 * The only module that speaks OAuth to a provider: token requests (client credentials, refresh token), revocation
 * and discovery, over openid-client. Maps every failure to a typed `TokenEndpointError`, aborts the HTTP request
 * when the calling fiber is interrupted, and enforces a timeout.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type { AccessToken, TokenRequestOptions } from "./AccessToken.js"
import * as internal from "./internal/tokenEndpoint.js"
import type { TokenClientLike } from "./TokenClient.js"
import type { InvalidTokenResponse, Operation, TokenEndpointError } from "./TokenError.js"

/**
 * How a token is obtained: the grant and its parameters, as data.
 *
 * @since 0.1.0
 * @category models
 */
export type Grant = Data.TaggedEnum<{
  ClientCredentials: { readonly options?: TokenRequestOptions | undefined }
  RefreshToken: { readonly refreshToken: Redacted.Redacted<string>; readonly options?: TokenRequestOptions | undefined }
}>

/**
 * @since 0.1.0
 * @category constructors
 */
export const Grant = Data.taggedEnum<Grant>()

/**
 * A successful token response, decoded and checked: the access token (with its expiry computed from
 * `expires_in` at receipt), and the refresh and ID tokens when the provider sent them.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenResponse {
  readonly accessToken: AccessToken
  readonly refreshToken?: Redacted.Redacted<string> | undefined
  readonly idToken?: Redacted.Redacted<string> | undefined
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
  /** The provider's metadata for a client: discovered once per issuer (failures are not remembered). */
  readonly metadata: (client: TokenClientLike) => Effect.Effect<ServerMetadata, TokenEndpointError>
  /** Decodes a token response obtained elsewhere (e.g. the code exchange of a login) the way `request` does. */
  readonly decode: (
    client: TokenClientLike,
    operation: Operation,
    response: internal.RawTokenResponse
  ) => Effect.Effect<TokenResponse, InvalidTokenResponse>
}>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How long one request may take before it is aborted. Default: 10 seconds. Keep it generous for refresh: a
   * refresh abandoned here may still complete at the provider, and with refresh-token rotation the used token is
   * then gone (the user must sign in again).
   */
  readonly timeout?: Duration.DurationInput | undefined
  /** The lifetime assumed when a response has no `expires_in`. Default: 5 minutes. */
  readonly defaultLifetime?: Duration.DurationInput | undefined
  /** How long discovered metadata is kept. Default: 1 hour. */
  readonly metadataTimeToLive?: Duration.DurationInput | undefined
}

/**
 * Builds the token endpoint service.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<TokenEndpoint["Type"]> = internal.make

/**
 * The token endpoint over openid-client and the platform's `fetch`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<TokenEndpoint> => Layer.effect(TokenEndpoint, make(options))

/**
 * The default: a 10 second timeout and a 5 minute default lifetime.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDefault: Layer.Layer<TokenEndpoint> = layer()

/**
 * @since 0.1.0
 * @category models
 */
export type RawTokenResponse = internal.RawTokenResponse
