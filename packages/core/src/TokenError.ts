/**
 * Everything that can go wrong while obtaining, storing or using a token, one class per cause. Every error says
 * what happened and what to do about it; none of them ever carries a token or a secret.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * The token endpoint operation an error comes from.
 *
 * @since 0.1.0
 * @category models
 */
export const Operation = Schema.Literal(
  "discovery",
  "client_credentials",
  "refresh_token",
  "authorization_code",
  "token_exchange",
  "revocation"
)

/**
 * @since 0.1.0
 * @category models
 */
export type Operation = typeof Operation.Type

const describe = (operation: Operation): string =>
  operation === "discovery"
    ? "discovery"
    : operation === "revocation"
    ? "revocation request"
    : `${operation} token request`

/**
 * The provider answered with an OAuth 2.0 error response (RFC 6749 §5.2).
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenRequestRejected extends Schema.TaggedError<TokenRequestRejected>()("TokenRequestRejected", {
  operation: Operation,
  clientId: Schema.String,
  endpoint: Schema.String,
  status: Schema.Number,
  error: Schema.String,
  errorDescription: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const description = this.errorDescription ? ` (${this.errorDescription})` : ""
    return `The ${describe(this.operation)} of client "${this.clientId}" was rejected by ${this.endpoint} ` +
      `with HTTP ${this.status} "${this.error}"${description}. ${hintFor(this.error)}`
  }
}

const hintFor = (error: string): string => {
  switch (error) {
    case "invalid_client":
    case "unauthorized_client":
      return "Check the client id, the client secret and the client authentication method configured for this client."
    case "invalid_grant":
      return "The grant (refresh token or code) is no longer valid: the user must sign in again."
    case "invalid_scope":
    case "invalid_target":
      return "Check the scope and resource requested against what the client is allowed at the provider."
    default:
      return "See the provider's logs for details."
  }
}

/**
 * The token endpoint could not be reached, or answered with a server error: a transient failure that a later
 * attempt may overcome. Nothing was cached or stored.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenEndpointUnavailable
  extends Schema.TaggedError<TokenEndpointUnavailable>()("TokenEndpointUnavailable", {
    operation: Operation,
    clientId: Schema.String,
    endpoint: Schema.String,
    status: Schema.optional(Schema.Number),
    reason: Schema.String
  })
{
  override get message(): string {
    const status = this.status === undefined ? "" : ` (HTTP ${this.status})`
    return `The ${describe(this.operation)} of client "${this.clientId}" to ${this.endpoint} failed${status}: ` +
      `${this.reason}. The provider may be down or unreachable; the next call tries again.`
  }
}

/**
 * The token endpoint did not answer within the configured timeout. The request was aborted.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenEndpointTimeout extends Schema.TaggedError<TokenEndpointTimeout>()("TokenEndpointTimeout", {
  operation: Operation,
  clientId: Schema.String,
  endpoint: Schema.String,
  timeoutMillis: Schema.Number
}) {
  override get message(): string {
    return `The ${describe(this.operation)} of client "${this.clientId}" to ${this.endpoint} did not complete ` +
      `within ${this.timeoutMillis} ms and was aborted. Check the provider's health, or raise the timeout.`
  }
}

/**
 * The token endpoint answered successfully, but not with a usable token response (not JSON, a missing or
 * malformed field, an unsupported `token_type`).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidTokenResponse extends Schema.TaggedError<InvalidTokenResponse>()("InvalidTokenResponse", {
  operation: Operation,
  clientId: Schema.String,
  endpoint: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `The ${describe(this.operation)} of client "${this.clientId}" to ${this.endpoint} returned an ` +
      `invalid response: ${this.reason}. The token was not used; check the provider and client configuration.`
  }
}

/**
 * Any failure of a request to the token endpoint.
 *
 * @since 0.1.0
 * @category errors
 */
export type TokenEndpointError =
  | TokenRequestRejected
  | TokenEndpointUnavailable
  | TokenEndpointTimeout
  | InvalidTokenResponse

/**
 * A client configuration is invalid. Raised when the layer that holds it is built, naming the client and field.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidClientConfiguration
  extends Schema.TaggedError<InvalidClientConfiguration>()("InvalidClientConfiguration", {
    client: Schema.String,
    field: Schema.String,
    reason: Schema.String
  })
{
  override get message(): string {
    return `The configuration of token client "${this.client}" is invalid at "${this.field}": ${this.reason}.`
  }
}

/**
 * A token was asked for a client name that was never configured.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnknownTokenClient extends Schema.TaggedError<UnknownTokenClient>()("UnknownTokenClient", {
  client: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `No token client named "${this.client}" is configured (known: ${this.known.join(", ") || "none"}). ` +
      `Add it to the client-credentials configuration.`
  }
}

/**
 * A user token was asked for on a fiber that acts for no user: provide `CurrentUser` (per request, per websocket
 * connection, per job).
 *
 * @since 0.1.0
 * @category errors
 */
export class NoCurrentUser extends Schema.TaggedError<NoCurrentUser>()("NoCurrentUser", {}) {
  override get message(): string {
    return "No user is signed in on this fiber: provide CurrentUser (e.g. CurrentUser.provide(user)) " +
      "around code that calls APIs on a user's behalf."
  }
}

/**
 * The user's tokens are missing or no longer usable (none stored, no refresh token, or the provider rejected the
 * refresh token). The application must sign the user in again.
 *
 * @since 0.1.0
 * @category errors
 */
export class SignInRequired extends Schema.TaggedError<SignInRequired>()("SignInRequired", {
  subject: Schema.String,
  reason: Schema.Literal("no-tokens", "no-refresh-token", "refresh-token-rejected")
}) {
  override get message(): string {
    const why = this.reason === "no-tokens"
      ? "no tokens are stored for them"
      : this.reason === "no-refresh-token"
      ? "their access token expired and no refresh token is stored"
      : "the provider rejected their refresh token (expired, revoked or reused); their tokens were cleared"
    return `User "${this.subject}" must sign in again: ${why}.`
  }
}

/**
 * A token store failed (unreachable, timed out) or holds data that cannot be read back. Nothing was changed.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenStoreError extends Schema.TaggedError<TokenStoreError>()("TokenStoreError", {
  store: Schema.String,
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `The ${this.store} token store failed to ${this.operation}: ${this.reason}.`
  }
}
