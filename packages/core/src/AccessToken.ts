/**
 * The access token model shared by both kinds of token (client credentials and user), and the parameters a
 * token is requested with.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"

/**
 * An access token as the library holds it: the secret itself stays `Redacted`; `issuedAt` and `expiresAt` are
 * epoch milliseconds on the Effect `Clock` at the moment the token endpoint answered.
 *
 * @since 0.1.0
 * @category models
 */
export class AccessToken extends Schema.Class<AccessToken>("@effect-atm/core/AccessToken")({
  accessToken: Schema.Redacted(Schema.String),
  /** The authorization scheme: `Bearer`, or `DPoP` for a token bound to a proof key (RFC 9449). */
  tokenType: Schema.Literal("Bearer", "DPoP"),
  issuedAt: Schema.Number,
  expiresAt: Schema.Number,
  scope: Schema.optional(Schema.String),
  resource: Schema.optional(Schema.String),
  /**
   * The proof key a `DPoP` token is bound to (a private JWK as JSON, see `DPoP`): kept with the token so that
   * whoever reads it from a store can prove possession. Stores encrypt it with the rest of the token.
   *
   * @since 0.3.0
   */
  dpopKey: Schema.optional(Schema.Redacted(Schema.String))
}) {}

// Each token's header value, built once: a concatenation made per request is a new string that the HTTP client
// flattens (copies) again on every request to check and write it — a quarter of what the token middleware allocated
// per request.
const authorizations = new WeakMap<AccessToken, string>()

/**
 * The value of an `Authorization` header carrying the token: the only place the secret is unwrapped. A function
 * rather than a getter on the token, so that no rendering of a token (`util.inspect` with `getters: true`
 * included) can show it.
 *
 * @since 0.2.0
 * @category encoding
 */
export const authorization = (token: AccessToken): string => {
  let value = authorizations.get(token)
  if (value === undefined) {
    value = `${token.tokenType} ${Redacted.value(token.accessToken)}`
    authorizations.set(token, value)
  }
  return value
}

/**
 * Whether two tokens carry the same secret: how the library tells "the token that was rejected" from "a token
 * someone obtained since".
 *
 * @since 0.1.0
 * @category predicates
 */
export const isSameToken = (self: AccessToken, that: AccessToken): boolean =>
  self === that || Redacted.value(self.accessToken) === Redacted.value(that.accessToken)

/**
 * The instant after which a token is renewed rather than handed out: `renewBefore` ahead of expiry, but never
 * more than half of the token's lifetime ahead, so that a short-lived token (shorter than twice the buffer) is
 * still used for a while instead of being renewed on every call.
 *
 * @since 0.1.0
 * @category expiry
 */
export const renewAt = (token: AccessToken, renewBefore: Duration.Duration): number => {
  const buffer = Math.min(Duration.toMillis(renewBefore), (token.expiresAt - token.issuedAt) / 2)
  return token.expiresAt - Math.max(0, buffer)
}

/**
 * Whether a token may be handed out at `now` (epoch millis) without renewing it first.
 *
 * @example
 * ```ts
 * import { AccessToken } from "@effect-atm/core"
 * import { Duration, Redacted } from "effect"
 *
 * // a 5-minute token, issued at 0
 * const token = new AccessToken.AccessToken({
 *   accessToken: Redacted.make("…"),
 *   tokenType: "Bearer",
 *   issuedAt: 0,
 *   expiresAt: 300_000
 * })
 * AccessToken.renewAt(token, Duration.seconds(60)) // 240000: a minute before expiry
 * AccessToken.isFresh(token, 200_000, Duration.seconds(60)) // true
 * AccessToken.isFresh(token, 250_000, Duration.seconds(60)) // false: renewed before it is handed out
 * ```
 *
 * @since 0.1.0
 * @category expiry
 */
export const isFresh = (token: AccessToken, now: number, renewBefore: Duration.Duration): boolean =>
  now < renewAt(token, renewBefore) && now < token.expiresAt

/**
 * Request parameters that select a token. Every parameter is part of the cache key: two requests that differ
 * in any of them never share a token.
 *
 * @since 0.1.0
 * @category models
 */
export class TokenRequestParameters extends Schema.Class<TokenRequestParameters>(
  "@effect-atm/core/TokenRequestParameters"
)({
  scope: Schema.optional(Schema.String),
  resource: Schema.optional(Schema.String),
  /** Further parameters sent to the token endpoint as they are (e.g. `audience` for some providers). */
  parameters: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
}) {}

/**
 * The parameters a caller may pass when asking for a token.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenRequestOptions {
  readonly scope?: string | undefined
  readonly resource?: string | undefined
  readonly parameters?: Readonly<Record<string, string>> | undefined
}

const keyPartSafe = /^[A-Za-z0-9._~:/@+-]*$/

/**
 * One component of a cache or store key, encoded so that keys made of several components never collide: every
 * UTF-16 code unit outside `A-Z a-z 0-9 . _ ~ : / @ + -` becomes `%` and four hex digits (so `%` itself, the
 * separators `& = # ;`, spaces and control characters are all escaped). The result is printable ASCII, fit for
 * Redis keys and SQL columns, and equal components give equal strings: URLs and most subjects stay readable.
 *
 * @since 0.2.0
 * @category keys
 */
export const keyPart = (component: string): string => {
  if (keyPartSafe.test(component)) return component
  let encoded = ""
  for (let i = 0; i < component.length; i++) {
    const char = component[i]!
    encoded += keyPartSafe.test(char) ? char : `%${component.charCodeAt(i).toString(16).toUpperCase().padStart(4, "0")}`
  }
  return encoded
}

/**
 * A canonical string for a set of request parameters: equal parameters give equal strings whatever the order of
 * the extra parameters, and different parameters never give equal strings (each component is encoded with
 * `keyPart`; segments are joined with `&`). No parameters at all give `""`.
 *
 * @example
 * ```ts
 * import { AccessToken } from "@effect-atm/core"
 *
 * AccessToken.parametersKey({ scope: "api.read", resource: "https://api.example.com" })
 * // "s=api.read&r=https://api.example.com"
 * AccessToken.parametersKey({ parameters: { b: "2", a: "1" } }) === AccessToken.parametersKey({ parameters: { a: "1", b: "2" } })
 * // true
 * AccessToken.parametersKey(undefined) // ""
 * ```
 *
 * @since 0.1.0
 * @category keys
 */
export const parametersKey = (options: TokenRequestOptions | undefined): string => {
  if (options === undefined) return ""
  const { parameters, resource, scope } = options
  const segments: Array<string> = []
  if (scope !== undefined) segments.push(`s=${keyPart(scope)}`)
  if (resource !== undefined) segments.push(`r=${keyPart(resource)}`)
  if (parameters !== undefined) {
    for (const name of Object.keys(parameters).sort()) {
      segments.push(`p.${keyPart(name)}=${keyPart(parameters[name]!)}`)
    }
  }
  return segments.join("&")
}

/**
 * The form parameters a token request carries for these options.
 *
 * @since 0.1.0
 * @category encoding
 */
export const toFormParameters = (options: TokenRequestOptions | undefined): Record<string, string> => {
  const form: Record<string, string> = { ...options?.parameters }
  if (options?.scope !== undefined) form.scope = options.scope
  if (options?.resource !== undefined) form.resource = options.resource
  return form
}
