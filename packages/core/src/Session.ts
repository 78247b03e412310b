/**
 * What the server keeps for a signed-in browser: who it is, the ID token (for logout), and when the session ends.
 * The browser holds nothing but a signed, random id (see `@effect-atm/oidc-login`).
 *
 * @since 0.3.0
 */
import * as Schema from "effect/Schema"
import * as CurrentUser from "./CurrentUser.js"

/**
 * A signed-in browser session. Its `id` is also the `sessionId` of the `CurrentUser` it provides, so the user's
 * tokens are stored per session (see `CurrentUser.storeKey`). Times are epoch milliseconds on the Effect `Clock`.
 *
 * @since 0.3.0
 * @category models
 */
export class Session extends Schema.Class<Session>("@effect-atm/core/Session")({
  /** 256-bit random, base64url. Only its HMAC-signed form ever leaves the server, in the session cookie. */
  id: Schema.String,
  subject: Schema.NonEmptyString,
  /** The ID token's claims about the user (the protocol claims `aud`, `exp`, `iat`, `nonce`, … removed). */
  claims: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  /** Kept for RP-initiated logout (`id_token_hint`). */
  idToken: Schema.optional(Schema.Redacted(Schema.String)),
  createdAt: Schema.Number,
  lastSeenAt: Schema.Number,
  /** The session ends here if it is not used again before (the idle timeout, slid forward by use). */
  idleExpiresAt: Schema.Number,
  /** The session ends here whatever happens (the absolute timeout). */
  absoluteExpiresAt: Schema.Number
}) {
  /**
   * When the session ends if nothing happens: the earlier of the idle and the absolute deadline.
   *
   * @since 0.3.0
   */
  get expiresAt(): number {
    return Math.min(this.idleExpiresAt, this.absoluteExpiresAt)
  }

  /**
   * The provider's session id (the ID token's `sid` claim), which back-channel logout names.
   *
   * @since 0.3.0
   */
  get providerSessionId(): string | undefined {
    const sid = this.claims["sid"]
    return typeof sid === "string" && sid.length > 0 ? sid : undefined
  }

  /**
   * The user this session acts for.
   *
   * @since 0.3.0
   */
  get user(): CurrentUser.User {
    return new CurrentUser.User({ subject: this.subject, sessionId: this.id, claims: this.claims })
  }
}
