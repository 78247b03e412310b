/**
 * What the server keeps for a signed-in browser (a `Session`) and for a sign-in in progress (a `PendingLogin`).
 * Both live server-side only, in a `SessionStore`; the browser holds nothing but a signed, random id.
 *
 * @since 0.1.0
 */
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import * as Schema from "effect/Schema"

/**
 * A signed-in browser session. Its `id` is also the `sessionId` of the `CurrentUser` it provides, so the user's
 * tokens are stored per session (see `CurrentUser.storeKey`). Times are epoch milliseconds on the Effect `Clock`.
 *
 * @since 0.1.0
 * @category models
 */
export class Session extends Schema.Class<Session>("@effect-atm/oidc-login/Session")({
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
   * @since 0.1.0
   */
  get expiresAt(): number {
    return Math.min(this.idleExpiresAt, this.absoluteExpiresAt)
  }

  /**
   * The user this session acts for.
   *
   * @since 0.1.0
   */
  get user(): CurrentUser.User {
    return new CurrentUser.User({ subject: this.subject, sessionId: this.id, claims: this.claims })
  }
}

/**
 * A sign-in in progress: what the callback must check (state, nonce) and prove (the PKCE verifier), and where the
 * browser goes afterwards. Used once: the callback takes it out of the store.
 *
 * @since 0.1.0
 * @category models
 */
export class PendingLogin extends Schema.Class<PendingLogin>("@effect-atm/oidc-login/PendingLogin")({
  /** 256-bit random, base64url; the pre-login cookie holds its signed form. */
  id: Schema.String,
  state: Schema.String,
  nonce: Schema.Redacted(Schema.String),
  codeVerifier: Schema.Redacted(Schema.String),
  /** A path on this site (never another origin). */
  returnTo: Schema.String,
  /** The resource the sign-in asked for, under which its access token is stored. */
  resource: Schema.optional(Schema.String),
  expiresAt: Schema.Number
}) {}
