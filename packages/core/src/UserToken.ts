/**
 * The tokens held for a signed-in user.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { AccessToken } from "./AccessToken.js"

/**
 * A user's tokens for one set of parameters (resource and scope): the access token for those parameters, if one
 * was obtained, and the refresh and ID tokens the user's resources share. Stores encode it with
 * `Schema.encode(UserToken)` (secrets become plain strings only then, for encryption at rest).
 *
 * @since 0.1.0
 * @category models
 */
export class UserToken extends Schema.Class<UserToken>("@effect-atm/core/UserToken")({
  accessToken: Schema.optional(AccessToken),
  refreshToken: Schema.optional(Schema.Redacted(Schema.String)),
  idToken: Schema.optional(Schema.Redacted(Schema.String)),
  /** The OAuth client the tokens were issued to. */
  clientId: Schema.String,
  /**
   * The session's DPoP proof key (a private JWK as JSON, see `DPoP`), shared by all of the user's parameters like
   * the refresh token: a DPoP-bound refresh token only refreshes with it, so it is stored (and encrypted) with it.
   *
   * @since 0.3.0
   */
  dpopKey: Schema.optional(Schema.Redacted(Schema.String))
}) {}

/**
 * The part of a user's tokens shared by all of their parameters: the token without its access token. Stores keep
 * it once per user.
 *
 * @since 0.1.0
 * @category constructors
 */
export const shared = (token: UserToken): UserToken =>
  token.accessToken === undefined ? token : new UserToken({
    clientId: token.clientId,
    ...(token.refreshToken === undefined ? {} : { refreshToken: token.refreshToken }),
    ...(token.idToken === undefined ? {} : { idToken: token.idToken }),
    ...(token.dpopKey === undefined ? {} : { dpopKey: token.dpopKey })
  }, true) // its fields come from a UserToken: already valid

/**
 * A user's shared tokens together with the access token for one set of parameters, as a store's `get` returns
 * them.
 *
 * @since 0.1.0
 * @category constructors
 */
export const withAccessToken = (shared: UserToken, accessToken: AccessToken | undefined): UserToken =>
  new UserToken({
    clientId: shared.clientId,
    ...(accessToken === undefined ? {} : { accessToken }),
    ...(shared.refreshToken === undefined ? {} : { refreshToken: shared.refreshToken }),
    ...(shared.idToken === undefined ? {} : { idToken: shared.idToken }),
    ...(shared.dpopKey === undefined ? {} : { dpopKey: shared.dpopKey })
  }, true) // both parts are already valid
