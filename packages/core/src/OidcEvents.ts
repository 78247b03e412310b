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
import type * as Redacted from "effect/Redacted"
import type { TokenRequestOptions } from "./AccessToken.js"
import type { User } from "./CurrentUser.js"
import type { RawTokenResponse } from "./TokenEndpoint.js"
import type { InvalidTokenResponse, TokenStoreError } from "./TokenError.js"

/**
 * Call it from a login of your own (another framework's OpenID Connect handler, a custom callback); with
 * `@effect-atm/oidc-login` it is called for you.
 *
 * @example
 * ```ts
 * import { CurrentUser, OidcEvents } from "@effect-atm/core"
 * import { Effect } from "effect"
 *
 * // the provider's token response of the code exchange, after your login validated its ID token
 * declare const tokenResponse: { access_token: string; token_type: string; expires_in: number; refresh_token: string }
 * declare const idTokenClaims: { sub: string; sid: string }
 *
 * const user = new CurrentUser.User({ subject: idTokenClaims.sub, sessionId: idTokenClaims.sid })
 *
 * // in the callback, before the session cookie is set
 * const onTokenValidated = Effect.flatMap(OidcEvents.OidcEvents, (events) =>
 *   events.tokenValidated(user, tokenResponse, { resource: "https://api.example.com" }))
 *
 * // at sign-out: the refresh token is revoked at the provider and the user's tokens cleared
 * const onSigningOut = Effect.flatMap(OidcEvents.OidcEvents, (events) => events.signingOut(user))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class OidcEvents extends Context.Tag("@effect-atm/core/OidcEvents")<OidcEvents, {
  /**
   * Stores the tokens of a validated token endpoint response (the code exchange) for the user. `params` are the
   * resource and scope the login asked for (default: the configured default resource). `options.dpopKey` is the
   * DPoP proof key the code exchange proved (see `DPoP`): it becomes the session's key, stored with its tokens.
   * `options.sentAt` is when the code exchange was sent (`Clock` milliseconds): the access token's expiry counts
   * from it, since the provider may have issued the token any time after (without it: from now, later than the
   * token's own expiry by as long as the answer took).
   */
  readonly tokenValidated: (
    user: User,
    response: RawTokenResponse,
    params?: TokenRequestOptions,
    options?: {
      readonly dpopKey?: Redacted.Redacted<string> | undefined
      readonly sentAt?: number | undefined
    }
  ) => Effect.Effect<void, InvalidTokenResponse | TokenStoreError>
  /**
   * Revokes the user's refresh token (a failure to revoke is logged, not raised: the user is signing out either
   * way) and clears everything stored for them.
   */
  readonly signingOut: (user: User) => Effect.Effect<void, TokenStoreError>
}>() {}
