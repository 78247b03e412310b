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
  clientId: Schema.String
}) {}
