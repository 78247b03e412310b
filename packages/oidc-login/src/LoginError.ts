/**
 * Everything that can go wrong during a sign-in, a sign-out or a session lookup, one class per cause. Each says
 * what happened and what to do; none carries a token, a code, a cookie value or a secret. `httpStatus` is the
 * status of the error page the login routes answer with.
 *
 * @since 0.1.0
 */
import * as SessionStore from "@effect-atm/core/SessionStore"
import type { InvalidTokenResponse, TokenStoreError } from "@effect-atm/core/TokenError"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * Marks every error of this module (see `isLoginError`).
 *
 * @since 0.2.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@effect-atm/oidc-login/LoginError")

/**
 * @since 0.2.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * Text the provider chose (`error`, `error_description`), fit for a log line and a page: control characters, line
 * and paragraph separators and escape sequences written as `\uXXXX` (no forged log lines, no terminal escapes), at
 * most 300 characters.
 *
 * @since 0.3.0
 * @category utils
 */
export const providerText = (text: string): string => {
  const escaped = text.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`
  )
  return escaped.length > 300 ? `${escaped.slice(0, 300)}…` : escaped
}

/**
 * The callback came without a sign-in this browser started: no pre-login cookie (`missing-cookie`, e.g. a replayed
 * callback URL: every answer of the callback expires the cookie), a cookie that does not open (`invalid-cookie`,
 * e.g. tampered, or sealed with a secret no longer configured), or a sign-in that expired (`expired-or-used`).
 * Nothing was exchanged or stored.
 *
 * @since 0.1.0
 * @category errors
 */
export class LoginRequestNotFound extends Schema.TaggedError<LoginRequestNotFound>()("LoginRequestNotFound", {
  reason: Schema.Literal("missing-cookie", "invalid-cookie", "expired-or-used")
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * The status of the error page.
   *
   * @since 0.1.0
   */
  get httpStatus(): number {
    return 400
  }
  override get message(): string {
    const why = this.reason === "missing-cookie"
      ? "this browser did not start a sign-in (its pre-login cookie is missing; are cookies enabled?)"
      : this.reason === "invalid-cookie"
      ? "the pre-login cookie failed its signature check (tampered, or sealed under another secret)"
      : "the sign-in expired or was already completed (a callback URL works once)"
    return `The sign-in could not be completed: ${why}. Nothing was stored; start the sign-in again.`
  }
}

/**
 * The callback's `state` is missing or is not the one of the sign-in this browser started: the response may be
 * forged, or belong to another sign-in attempt. The pending sign-in was discarded; nothing was stored.
 *
 * @since 0.1.0
 * @category errors
 */
export class StateMismatch extends Schema.TaggedError<StateMismatch>()("StateMismatch", {
  missing: Schema.Boolean
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * The status of the error page.
   *
   * @since 0.1.0
   */
  get httpStatus(): number {
    return 400
  }
  override get message(): string {
    return `The sign-in response ${this.missing ? "has no" : "has the wrong"} "state": it does not answer the ` +
      "sign-in this browser started (forged, or from another attempt). Nothing was stored; start the sign-in again."
  }
}

/**
 * The OpenID Provider answered the authorization request with an error (RFC 6749 §4.1.2.1), e.g. `access_denied`
 * when the user cancelled.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthorizationFailed extends Schema.TaggedError<AuthorizationFailed>()("AuthorizationFailed", {
  error: Schema.String,
  errorDescription: Schema.optional(Schema.String)
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * The status of the error page.
   *
   * @since 0.1.0
   */
  get httpStatus(): number {
    return 400
  }
  override get message(): string {
    const description = this.errorDescription ? ` (${providerText(this.errorDescription)})` : ""
    const hint = this.error === "access_denied"
      ? "The sign-in was cancelled or refused; sign in again to continue."
      : this.error === "invalid_scope" || this.error === "invalid_target"
      ? "Check the configured scope and resource against what the client may request at the provider."
      : "Check the client configuration (client id, redirect URI) at the provider, then sign in again."
    return `The OpenID Provider refused the sign-in with "${providerText(this.error)}"${description}. ${hint}`
  }
}

/**
 * The authorization response is malformed or not from the expected issuer (e.g. a wrong `iss` parameter, RFC
 * 9207, or no `code`). Nothing was stored.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidAuthorizationResponse
  extends Schema.TaggedError<InvalidAuthorizationResponse>()("InvalidAuthorizationResponse", {
    reason: Schema.String
  })
{
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * The status of the error page.
   *
   * @since 0.1.0
   */
  get httpStatus(): number {
    return 400
  }
  override get message(): string {
    return `The sign-in response is invalid: ${this.reason}. Nothing was stored; start the sign-in again.`
  }
}

/**
 * The provider's token endpoint refused to exchange the authorization code, e.g. `invalid_grant` for a code that
 * was already used, expired, or issued for another PKCE verifier or redirect URI.
 *
 * @since 0.1.0
 * @category errors
 */
export class CodeExchangeFailed extends Schema.TaggedError<CodeExchangeFailed>()("CodeExchangeFailed", {
  status: Schema.Number,
  error: Schema.String,
  errorDescription: Schema.optional(Schema.String)
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * The status of the error page.
   *
   * @since 0.1.0
   */
  get httpStatus(): number {
    return 400
  }
  override get message(): string {
    const description = this.errorDescription ? ` (${providerText(this.errorDescription)})` : ""
    const hint = this.error === "invalid_client" || this.error === "unauthorized_client"
      ? "Check the client id, client secret and authentication method."
      : "The code was already used, has expired, or does not match this sign-in: start the sign-in again."
    return `The provider refused to exchange the authorization code: HTTP ${this.status} "${
      providerText(this.error)
    }"` +
      `${description}. ${hint}`
  }
}

/**
 * The token response of the code exchange failed validation: no ID token, a wrong `nonce`, issuer or audience, an
 * expired ID token, or an unusable token response.
 *
 * @since 0.1.0
 * @category errors
 */
export class IdTokenRejected extends Schema.TaggedError<IdTokenRejected>()("IdTokenRejected", {
  reason: Schema.String
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * The status of the error page.
   *
   * @since 0.1.0
   */
  get httpStatus(): number {
    return 400
  }
  override get message(): string {
    return `The sign-in was rejected because the provider's tokens failed validation: ${this.reason}. ` +
      "Nothing was stored. If this persists, check the issuer and client id, and the clocks of both servers."
  }
}

/**
 * The OpenID Provider could not be reached, answered with a server error, or did not answer in time.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProviderUnavailable extends Schema.TaggedError<ProviderUnavailable>()("ProviderUnavailable", {
  operation: Schema.Literal("discovery", "authorization_code"),
  reason: Schema.String
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  /**
   * The status of the error page.
   *
   * @since 0.1.0
   */
  get httpStatus(): number {
    return 502
  }
  override get message(): string {
    const reason = this.reason.replace(/\.+$/, "")
    return `The OpenID Provider is unavailable (${this.operation}): ${reason}. Try again in a moment.`
  }
}

/**
 * The session store failed (unreachable, timed out) or holds data that cannot be read back. Defined in
 * `@effect-atm/core/SessionStore`, where the store's interface is, so that the SQL and Redis stores can fail with
 * it.
 *
 * @since 0.1.0
 * @category errors
 */
export const SessionStoreError = SessionStore.SessionStoreError

/**
 * @since 0.1.0
 * @category errors
 */
export type SessionStoreError = SessionStore.SessionStoreError

/**
 * The login configuration is invalid. Raised when the layer is built, naming the field.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidLoginConfiguration
  extends Schema.TaggedError<InvalidLoginConfiguration>()("InvalidLoginConfiguration", {
    field: Schema.String,
    reason: Schema.String
  })
{
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    return `The OpenID Connect login configuration is invalid at "${this.field}": ${this.reason}.`
  }
}

/**
 * Every way a sign-in callback can fail before a session exists.
 *
 * @since 0.1.0
 * @category errors
 */
export type CallbackError = Exclude<LoginError, InvalidLoginConfiguration> | InvalidTokenResponse | TokenStoreError

/**
 * Any error of this module.
 *
 * @since 0.2.0
 * @category errors
 */
export type LoginError =
  | LoginRequestNotFound
  | StateMismatch
  | AuthorizationFailed
  | InvalidAuthorizationResponse
  | CodeExchangeFailed
  | IdTokenRejected
  | ProviderUnavailable
  | SessionStoreError
  | InvalidLoginConfiguration

/**
 * Whether `u` is one of this module's errors.
 *
 * @since 0.2.0
 * @category guards
 */
export const isLoginError = (u: unknown): u is LoginError =>
  Predicate.hasProperty(u, TypeId) || SessionStore.isSessionStoreError(u)
