/**
 * Everything that can go wrong while obtaining, storing or using a token, one class per cause. Every error says
 * what happened and what to do about it; none of them ever carries a token or a secret.
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * Marks every error of this module, so that `isTokenError` recognises them whatever copy of the class made them.
 *
 * @since 0.2.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("@effect-atm/core/TokenError")

/**
 * @since 0.2.0
 * @category type ids
 */
export type TypeId = typeof TypeId

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
  errorDescription: Schema.optional(Schema.String),
  /**
   * True when the response had no usable OAuth error body (empty, HTML, not an error object): `error` was then
   * inferred from the HTTP status (see the decision table in docs/errors.md).
   */
  inferred: Schema.optional(Schema.Boolean),
  /** How long the provider asked the client to wait (`Retry-After`), in milliseconds. */
  retryAfter: Schema.optional(Schema.Number)
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    const description = this.errorDescription ? ` (${this.errorDescription})` : ""
    const error = this.inferred
      ? `HTTP ${this.status} and no OAuth error in the response body (taken as "${this.error}")`
      : `HTTP ${this.status} "${this.error}"${description}`
    return `The ${describe(this.operation)} of client "${this.clientId}" was rejected by ${this.endpoint} ` +
      `with ${error}. ${hintFor(this.error)}${retryAfterHint(this.retryAfter)}`
  }
}

const retryAfterHint = (retryAfter: number | undefined): string =>
  retryAfter === undefined ? "" : ` The provider asked to wait ${Math.ceil(retryAfter / 1000)} s before retrying.`

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
    reason: Schema.String,
    /** How long the provider asked the client to wait (`Retry-After`), in milliseconds. */
    retryAfter: Schema.optional(Schema.Number)
  })
{
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    const status = this.status === undefined ? "" : ` (HTTP ${this.status})`
    return `The ${describe(this.operation)} of client "${this.clientId}" to ${this.endpoint} failed${status}: ` +
      `${this.reason}. The provider may be down or unreachable; the next call tries again.` +
      retryAfterHint(this.retryAfter)
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
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

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
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    return `The ${describe(this.operation)} of client "${this.clientId}" to ${this.endpoint} returned an ` +
      `invalid response: ${this.reason}. The token was not used; check the provider and client configuration.`
  }
}

/**
 * The provider's metadata could not be discovered: the well-known document is unreachable, is not a metadata
 * document, or names another issuer than the one configured. Raised when a layer that discovers eagerly is built
 * (the default), or at the first request with `discovery: "lazy"`. `transient` is true only when the provider
 * could not be reached or answered with a server error; a mismatched or malformed document is a misconfiguration.
 *
 * @since 0.2.0
 * @category errors
 */
export class DiscoveryFailed extends Schema.TaggedError<DiscoveryFailed>()("DiscoveryFailed", {
  clientId: Schema.String,
  /** The issuer configured for the client. */
  issuer: Schema.String,
  /** The metadata document that was fetched. */
  discoveryUrl: Schema.String,
  /** The issuer the document names, when it names another one. */
  foundIssuer: Schema.optional(Schema.String),
  status: Schema.optional(Schema.Number),
  reason: Schema.String,
  transient: Schema.Boolean
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    const status = this.status === undefined ? "" : ` (HTTP ${this.status})`
    const hint = this.foundIssuer !== undefined
      ? `The document names issuer "${this.foundIssuer}" but "${this.issuer}" is configured: configure the issuer ` +
        `exactly as the provider names itself (scheme, host, path, trailing slash), or give tokenEndpoint instead.`
      : this.transient
      ? "The provider may be down or unreachable; the next attempt discovers again."
      : "Check the issuer URL (it must be the issuer identifier, without /.well-known/…), or give tokenEndpoint " +
        "instead of discovering."
    return `Discovery for client "${this.clientId}" at ${this.discoveryUrl} failed${status}: ${this.reason}. ${hint}`
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
  | DiscoveryFailed

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
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

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
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

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
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

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
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

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
 * A token manager (`ClientCredentialsTokens`, `UserTokens`, or a `TokenCache` of your own) was used after the
 * scope it was built in had closed — typically its layer was provided around a single call
 * (`Effect.provide(layer)`) and the service kept for later. Its renewals ran in that scope, so none can run
 * any more: provide the layer once, for the lifetime of the application.
 *
 * @since 0.3.0
 * @category errors
 */
export class TokenManagerClosed extends Schema.TaggedError<TokenManagerClosed>()("TokenManagerClosed", {}) {
  /**
   * @since 0.3.0
   */
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    return "A token manager was used after the scope of its layer had closed, so it cannot renew tokens any more " +
      "(was its layer provided around a single call, with Effect.provide, and the service kept for later?). " +
      "Provide the layer once, for the lifetime of the application, and use the service only inside it."
  }
}

/**
 * What a token store (or lock) was doing when it failed. `"lease"` (since 0.3.0): a write made under a renewal
 * lease that was no longer held was refused (see `TokenLock.Lease`).
 *
 * @since 0.2.0
 * @category models
 */
export const StoreOperation = Schema.Literal(
  "start",
  "connect",
  "migrate",
  "get",
  "set",
  "store",
  "clear",
  "remove",
  "lock",
  "lease",
  "purge",
  "publish",
  "subscribe"
)

/**
 * @since 0.2.0
 * @category models
 */
export type StoreOperation = typeof StoreOperation.Type

const describeStoreOperation = (operation: StoreOperation): string => {
  switch (operation) {
    case "start":
      return "start"
    case "connect":
      return "connect"
    case "migrate":
      return "create its tables"
    case "get":
      return "read a token"
    case "set":
    case "store":
      return "write a token"
    case "clear":
    case "remove":
      return "remove a token"
    case "lock":
      return "take or hold the renewal lock"
    case "lease":
      return "keep the renewal lease"
    case "purge":
      return "delete expired tokens"
    case "publish":
      return "publish an event to the other instances"
    case "subscribe":
      return "subscribe to the other instances' events"
  }
}

/**
 * A token store failed (unreachable, timed out) or holds data that cannot be read back. Nothing was changed.
 * `transient` is false when retrying cannot help (the stored data is unreadable, the backend cannot do what was
 * asked).
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenStoreError extends Schema.TaggedError<TokenStoreError>()("TokenStoreError", {
  store: Schema.String,
  operation: StoreOperation,
  reason: Schema.String,
  transient: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId

  override get message(): string {
    const hint = this.transient
      ? "Check that the store is reachable; the next call tries again."
      : "Retrying will not help: check the store's configuration and contents."
    return `The ${this.store} token store failed to ${describeStoreOperation(this.operation)}: ${this.reason}. ${hint}`
  }
}

/**
 * Any error of this module.
 *
 * @since 0.2.0
 * @category errors
 */
export type TokenError =
  | TokenEndpointError
  | InvalidClientConfiguration
  | UnknownTokenClient
  | NoCurrentUser
  | SignInRequired
  | TokenStoreError
  | TokenManagerClosed

/**
 * Whether `u` is one of this module's errors.
 *
 * @since 0.2.0
 * @category guards
 */
export const isTokenError = (u: unknown): u is TokenError => Predicate.hasProperty(u, TypeId)

const guard = <Tag extends TokenError["_tag"]>(tag: Tag) => (u: unknown): u is Extract<TokenError, { _tag: Tag }> =>
  isTokenError(u) && u._tag === tag

/**
 * @since 0.2.0
 * @category guards
 */
export const isTokenRequestRejected = guard("TokenRequestRejected")

/**
 * @since 0.2.0
 * @category guards
 */
export const isTokenEndpointUnavailable = guard("TokenEndpointUnavailable")

/**
 * @since 0.2.0
 * @category guards
 */
export const isTokenEndpointTimeout = guard("TokenEndpointTimeout")

/**
 * @since 0.2.0
 * @category guards
 */
export const isInvalidTokenResponse = guard("InvalidTokenResponse")

/**
 * @since 0.2.0
 * @category guards
 */
export const isDiscoveryFailed = guard("DiscoveryFailed")

/**
 * @since 0.2.0
 * @category guards
 */
export const isInvalidClientConfiguration = guard("InvalidClientConfiguration")

/**
 * @since 0.2.0
 * @category guards
 */
export const isUnknownTokenClient = guard("UnknownTokenClient")

/**
 * @since 0.2.0
 * @category guards
 */
export const isNoCurrentUser = guard("NoCurrentUser")

/**
 * @since 0.2.0
 * @category guards
 */
export const isSignInRequired = guard("SignInRequired")

/**
 * @since 0.2.0
 * @category guards
 */
export const isTokenStoreError = guard("TokenStoreError")

/**
 * @since 0.3.0
 * @category guards
 */
export const isTokenManagerClosed = guard("TokenManagerClosed")

/**
 * OAuth error codes with which a provider says "try again later" rather than "no".
 */
const transientOAuthErrors: ReadonlySet<string> = new Set(["temporarily_unavailable", "server_error", "slow_down"])

/**
 * Whether a later attempt may succeed without anyone changing anything: the provider or the store was down, slow
 * or overloaded. A caller can retry these (with backoff) and should report the others.
 *
 * @example
 * ```ts
 * import { TokenError, UserTokens } from "@effect-atm/core"
 * import { Effect, Schedule } from "effect"
 *
 * const token = Effect.flatMap(UserTokens.UserTokens, (tokens) => tokens.get()).pipe(
 *   Effect.retry({ schedule: Schedule.exponential("200 millis"), times: 3, while: TokenError.isTransient })
 * )
 * ```
 *
 * @since 0.2.0
 * @category guards
 */
export const isTransient = (error: TokenError): boolean => {
  switch (error._tag) {
    case "TokenEndpointUnavailable":
    case "TokenEndpointTimeout":
      return true
    case "TokenRequestRejected":
      return transientOAuthErrors.has(error.error)
    case "TokenStoreError":
    case "DiscoveryFailed":
      return error.transient
    default:
      return false
  }
}
