/**
 * The two moments of a login that matter to token management, as a service the login handler (ours in
 * `@effect-atm/oidc-login`, or yours) calls:
 *
 * - `tokenValidated`: the login validated the provider's tokens; store them for the user (the seed of the
 *   server-side store — what .NET apps write by hand in the `OnTokenValidated` event);
 * - `signingOut`: the user signs out; revoke their refresh token at the provider and clear their tokens.
 *
 * Provided by `UserTokens.layer`, which shares its client configuration.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { TokenRequestOptions } from "./AccessToken.js"
import type { User } from "./CurrentUser.js"
import type { RawTokenResponse } from "./TokenEndpoint.js"
import type { InvalidTokenResponse, TokenStoreError } from "./TokenError.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class OidcEvents extends Context.Tag("@effect-atm/core/OidcEvents")<OidcEvents, {
  /**
   * Stores the tokens of a validated token endpoint response (the code exchange) for the user. `params` are the
   * resource and scope the login asked for (default: the configured default resource).
   */
  readonly tokenValidated: (
    user: User,
    response: RawTokenResponse,
    params?: TokenRequestOptions
  ) => Effect.Effect<void, InvalidTokenResponse | TokenStoreError>
  /**
   * Revokes the user's refresh token (a failure to revoke is logged, not raised: the user is signing out either
   * way) and clears everything stored for them.
   */
  readonly signingOut: (user: User) => Effect.Effect<void, TokenStoreError>
}>() {}
