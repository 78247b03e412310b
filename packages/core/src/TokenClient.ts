/**
 * How the library reaches a provider's token endpoint as a given OAuth client: where the endpoint is, and how the
 * client authenticates. Client-credentials clients and the OpenID Connect web client both extend it.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as DPoP from "./DPoP.js"
import * as clientAuthentication from "./internal/clientAuthentication.js"
import * as options from "./internal/options.js"
import { InvalidClientConfiguration } from "./TokenError.js"

const isHttpUrl = (value: string): boolean => {
  try {
    const url = new URL(value)
    return url.protocol === "https:" || url.protocol === "http:"
  } catch {
    return false
  }
}

/**
 * An absolute http(s) URL.
 *
 * @since 0.1.0
 * @category schemas
 */
export const HttpUrl = Schema.String.pipe(
  Schema.filter((value) => isHttpUrl(value) || "must be an absolute http:// or https:// URL")
)

/**
 * How the client authenticates at the token endpoint (and at the revocation endpoint):
 *
 * - `client_secret_basic` (default), `client_secret_post`: the client secret in the Basic header or the form body.
 *   `client_secret_basic_unencoded` sends the id and secret in the Basic header without the form-encoding RFC 6749
 *   §2.3.1 requires, for providers that do not decode it (a secret with `-`, `_`, `%` or `+` then fails there with
 *   `client_secret_basic`).
 * - `private_key_jwt`: a JWT assertion signed with `privateKey` (RFC 7523), `client_secret_jwt`: one signed with
 *   the client secret (HS256). A fresh assertion (new `jti`, `iat`, `exp`) is made for every request, retries
 *   included.
 * - `tls_client_auth`, `self_signed_tls_client_auth` (RFC 8705): the client certificate presented on the TLS
 *   connection (`clientCertificate`, `clientCertificateKey`); the transport comes from `MutualTls`.
 * - `none`: a public client.
 *
 * @since 0.1.0
 * @category models
 */
export const ClientAuthentication = Schema.Literal(
  "client_secret_basic",
  "client_secret_basic_unencoded",
  "client_secret_post",
  "client_secret_jwt",
  "private_key_jwt",
  "tls_client_auth",
  "self_signed_tls_client_auth",
  "none"
)

/**
 * @since 0.1.0
 * @category models
 */
export type ClientAuthentication = typeof ClientAuthentication.Type

/**
 * The JWS algorithms a `private_key_jwt` assertion may be signed with.
 *
 * @since 0.3.0
 * @category models
 */
export const SigningAlgorithm = Schema.Literal(
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA"
)

/**
 * @since 0.3.0
 * @category models
 */
export type SigningAlgorithm = typeof SigningAlgorithm.Type

/**
 * The fields every token client has. Give `issuer` to discover the endpoints (OpenID Connect discovery or RFC
 * 8414), or `tokenEndpoint` (and optionally `revocationEndpoint`) to skip discovery.
 *
 * @since 0.1.0
 * @category models
 */
export const tokenClientFields = {
  issuer: Schema.optional(HttpUrl),
  tokenEndpoint: Schema.optional(HttpUrl),
  revocationEndpoint: Schema.optional(HttpUrl),
  clientId: Schema.NonEmptyTrimmedString,
  /** Kept `Redacted` in configuration too: give it as `Redacted.make(secret)` or through `Config.redacted`. */
  clientSecret: Schema.optional(Schema.RedactedFromSelf(Schema.String)),
  authentication: Schema.optionalWith(ClientAuthentication, { default: () => "client_secret_basic" as const }),
  /**
   * The key `private_key_jwt` signs with: a private JWK (JSON) or a PKCS#8 / PKCS#1 / SEC1 PEM, `Redacted`. The
   * algorithm follows from the key (RSA: RS256, P-256: ES256, P-384: ES384, P-521: ES512, Ed25519: EdDSA)
   * unless `signingAlgorithm` says otherwise.
   *
   * @since 0.3.0
   */
  privateKey: Schema.optional(Schema.RedactedFromSelf(Schema.String)),
  /**
   * The `kid` put in the assertion's header (default: the JWK's `kid`, if any).
   *
   * @since 0.3.0
   */
  privateKeyId: Schema.optional(Schema.NonEmptyTrimmedString),
  /**
   * The assertion's algorithm when not the key's default, e.g. `PS256` for an RSA key.
   *
   * @since 0.3.0
   */
  signingAlgorithm: Schema.optional(SigningAlgorithm),
  /**
   * The client certificate (PEM, optionally followed by its chain) presented on TLS connections to the provider
   * with `tls_client_auth` and `self_signed_tls_client_auth`, and to APIs that accept certificate-bound tokens.
   *
   * @since 0.3.0
   */
  clientCertificate: Schema.optional(Schema.RedactedFromSelf(Schema.String)),
  /**
   * The private key of `clientCertificate` (PEM).
   *
   * @since 0.3.0
   */
  clientCertificateKey: Schema.optional(Schema.RedactedFromSelf(Schema.String)),
  /**
   * Allow plain http:// endpoints that are not on the loopback interface. Loopback addresses (127.0.0.1,
   * localhost, ::1) are always allowed, for local development and tests.
   */
  allowInsecureRequests: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /**
   * Sender-constrained tokens (RFC 9449): `true` (ES256) or `{ algorithm }` makes every token request and every
   * request of the named clients carry a DPoP proof (see `DPoP`).
   *
   * @since 0.3.0
   */
  dpop: Schema.optional(DPoP.Setting)
}

/**
 * A client of a token endpoint.
 *
 * @since 0.1.0
 * @category models
 */
export class TokenClient extends Schema.Class<TokenClient>("@effect-atm/core/TokenClient")(tokenClientFields) {}

/**
 * What the token endpoint needs to know of a client.
 *
 * @since 0.1.0
 * @category models
 */
export type TokenClientLike = Schema.Struct.Type<typeof tokenClientFields>

/**
 * Cross-field checks every token client must pass.
 *
 * @since 0.1.0
 * @category validation
 */
export const checkTokenClient = (
  client: TokenClientLike
): { readonly field: string; readonly reason: string } | undefined => {
  if (client.issuer === undefined && client.tokenEndpoint === undefined) {
    return { field: "issuer", reason: "either issuer (for discovery) or tokenEndpoint is required" }
  }
  return clientAuthentication.check(client)
}

/** Fields that hold secrets: a wrong value there is described, never shown. */
const secretFields: ReadonlySet<string> = new Set([
  "clientSecret",
  "privateKey",
  "clientCertificate",
  "clientCertificateKey"
])

/**
 * The reason of a decoding issue without the value it was about: a secret given as a plain string (an easy
 * mistake) must not reach a log through the error that refuses it, and other strings (a URL with credentials in
 * it) are not shown either.
 */
const safeReason = (issue: ParseResult.ArrayFormatterIssue, input: unknown): string => {
  const field = issue.path.at(-1)
  if (typeof field === "string" && secretFields.has(field)) {
    return "must be a Redacted value: give it as Redacted.make(secret) or read it with Config.redacted (the value " +
      "given is not shown)"
  }
  let actual: unknown = input
  for (const key of issue.path) {
    actual = typeof actual === "object" && actual !== null ? (actual as Record<PropertyKey, unknown>)[key] : undefined
  }
  if (typeof actual !== "string" || actual.length === 0) return issue.message
  return issue.message.replaceAll(JSON.stringify(actual), "(a string, not shown)").replaceAll(actual, "(not shown)")
}

/**
 * Decodes a client configuration and runs its cross-field checks, failing with an error that names the client
 * and the offending field.
 *
 * @since 0.1.0
 * @category validation
 */
export const decodeClient = <A extends TokenClientLike, I>(
  schema: Schema.Schema<A, I>,
  name: string,
  input: unknown
): Effect.Effect<A, InvalidClientConfiguration> =>
  Effect.suspend(() => {
    const decoded = Schema.decodeUnknownEither(schema, { errors: "first", onExcessProperty: "error" })(input)
    if (Either.isLeft(decoded)) {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]
      return Effect.fail(
        new InvalidClientConfiguration({
          client: name,
          field: issue?.path.join(".") || "(root)",
          reason: issue === undefined ? "invalid" : safeReason(issue, input)
        })
      )
    }
    const problem = checkTokenClient(decoded.right)
    return problem === undefined
      ? Effect.succeed(decoded.right)
      : Effect.fail(new InvalidClientConfiguration({ client: name, ...problem }))
  })

/**
 * Decodes a duration given in code or configuration strictly: a `Duration`, a non-negative finite number of
 * milliseconds, a non-negative bigint of nanoseconds, a `[seconds, nanos]` pair, or a string such as
 * `"30 seconds"`. Effect's own `Duration.decode` turns a negative or NaN number into zero and throws on `"soon"`;
 * here both are a `Left` with a reason to put in a configuration error (e.g. `must be a non-negative, finite
 * duration …, got "soon"`).
 *
 * @example
 * ```ts
 * import { TokenClient } from "@effect-atm/core"
 *
 * TokenClient.decodeDuration("30 seconds") // Right(Duration)
 * TokenClient.decodeDuration(-60_000) // Left("must be a non-negative, finite duration …, got -60000")
 * ```
 *
 * @since 0.2.0
 * @category validation
 */
export const decodeDuration: (input: unknown) => Either.Either<Duration.Duration, string> = options.decodeDuration

/**
 * The input form of a token client, as given in code or read from `config`.
 *
 * @since 0.2.0
 * @category models
 */
export type TokenClientInput = typeof TokenClient.Encoded

/**
 * The fields of a token client in Effect `Config`, one `Config` each (by default environment variables such as
 * `ISSUER`, `CLIENT_ID`, `CLIENT_SECRET`).
 *
 * @since 0.1.0
 * @category config
 */
export const configFields = {
  issuer: Config.option(Config.string("ISSUER")).pipe(
    Config.withDescription("Issuer URL of the OpenID Provider (discovery)")
  ),
  tokenEndpoint: Config.option(Config.string("TOKEN_ENDPOINT")).pipe(
    Config.withDescription("Token endpoint URL (instead of discovery)")
  ),
  revocationEndpoint: Config.option(Config.string("REVOCATION_ENDPOINT")).pipe(
    Config.withDescription("Revocation endpoint URL (when not discovered)")
  ),
  clientId: Config.string("CLIENT_ID").pipe(Config.withDescription("OAuth client id")),
  clientSecret: Config.option(Config.redacted("CLIENT_SECRET")).pipe(Config.withDescription("OAuth client secret")),
  authentication: Config.option(Config.literal(...ClientAuthentication.literals)("AUTHENTICATION")).pipe(
    Config.withDescription(`One of ${ClientAuthentication.literals.join(", ")} (default client_secret_basic)`)
  ),
  privateKey: Config.option(Config.redacted("PRIVATE_KEY")).pipe(
    Config.withDescription("private_key_jwt: the private key, a JWK (JSON) or a PEM")
  ),
  privateKeyId: Config.option(Config.string("PRIVATE_KEY_ID")).pipe(
    Config.withDescription("private_key_jwt: the kid of the key (default: the JWK's kid)")
  ),
  signingAlgorithm: Config.option(Config.literal(...SigningAlgorithm.literals)("SIGNING_ALGORITHM")).pipe(
    Config.withDescription("private_key_jwt: the algorithm, when not the key's default (e.g. PS256)")
  ),
  clientCertificate: Config.option(Config.redacted("CLIENT_CERTIFICATE")).pipe(
    Config.withDescription("mTLS: the client certificate (PEM)")
  ),
  clientCertificateKey: Config.option(Config.redacted("CLIENT_CERTIFICATE_KEY")).pipe(
    Config.withDescription("mTLS: the private key of the client certificate (PEM)")
  ),
  allowInsecureRequests: Config.option(Config.boolean("ALLOW_INSECURE_REQUESTS")).pipe(
    Config.withDescription("Allow plain http:// endpoints off the loopback interface (default false)")
  ),
  dpop: Config.option(Config.literal("true", "false", ...DPoP.Algorithm.literals)("DPOP")).pipe(
    Config.withDescription("DPoP-bound tokens: true (ES256), an algorithm (ES384, EdDSA, ...) or false (default)")
  )
}

/**
 * A token client's input read from Effect `Config` (nest it with `Config.nested` to prefix the variables). It is
 * decoded, with errors naming the client and the field, by the layer it is given to (or `decode`).
 *
 * @since 0.2.0
 * @category config
 */
export const config: Config.Config<TokenClientInput> = Config.all(configFields).pipe(
  Config.map((fields): TokenClientInput => ({
    clientId: fields.clientId,
    ...options.present("issuer", fields.issuer),
    ...options.present("tokenEndpoint", fields.tokenEndpoint),
    ...options.present("revocationEndpoint", fields.revocationEndpoint),
    ...options.present("clientSecret", fields.clientSecret),
    ...options.present("authentication", fields.authentication),
    ...options.present("privateKey", fields.privateKey),
    ...options.present("privateKeyId", fields.privateKeyId),
    ...options.present("signingAlgorithm", fields.signingAlgorithm),
    ...options.present("clientCertificate", fields.clientCertificate),
    ...options.present("clientCertificateKey", fields.clientCertificateKey),
    ...options.present("allowInsecureRequests", fields.allowInsecureRequests),
    ...options.present(
      "dpop",
      Option.map(fields.dpop, (value) => value === "true" ? true : value === "false" ? false : { algorithm: value })
    )
  }))
)

/**
 * Decodes a token client once, so that several layers (the login, the token managers) share one checked value
 * and a mistake is reported once. `name` is how errors call the client (default: `client`).
 *
 * @example
 * ```ts
 * import { TokenClient } from "@effect-atm/core"
 * import { Effect, Redacted } from "effect"
 *
 * const client = TokenClient.decode({
 *   issuer: "https://login.example.com",
 *   clientId: "web",
 *   clientSecret: Redacted.make("…")
 * })
 * // Effect<TokenClient, InvalidClientConfiguration>: give the result to OidcLogin.layer and layerServer
 * ```
 *
 * @since 0.2.0
 * @category constructors
 */
export const decode = (
  input: TokenClientInput | TokenClient,
  name = "client"
): Effect.Effect<TokenClient, InvalidClientConfiguration> =>
  decodeClient(TokenClient, name, input instanceof TokenClient ? Schema.encodeSync(TokenClient)(input) : input)
