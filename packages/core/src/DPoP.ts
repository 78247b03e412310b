/**
 * DPoP (RFC 9449): sender-constrained tokens. A client configured with `dpop` gets a proof key — one per
 * client-credentials client, one per user session — and proves possession of it on every token request and every
 * API request its named clients make (`Authorization: DPoP <token>` plus a `DPoP` proof with `htm`, `htu`,
 * `iat`, a fresh `jti`, `ath`, and the server's nonce when it asked for one). A token stolen without its key is
 * useless.
 *
 * A proof key is a private JWK (with its `alg`) serialized as JSON and kept `Redacted`: it travels with the
 * tokens bound to it (`AccessToken.dpopKey`, `UserToken.dpopKey`) so that any instance sharing the store can use
 * and refresh them, and is encrypted with them when `TokenEncryption` is on.
 *
 * @example
 * ```ts
 * import { ClientCredentialsTokens, TokenEndpoint } from "@effect-atm/core"
 * import { Layer, Redacted } from "effect"
 *
 * // the only change from bearer tokens is `dpop`: the named clients send proofs by themselves
 * const Tokens = ClientCredentialsTokens.layerMemory({
 *   clients: {
 *     catalog: {
 *       issuer: "https://login.example.com",
 *       clientId: "worker",
 *       clientSecret: Redacted.make("…"),
 *       dpop: true // or { algorithm: "EdDSA" }; ES256 by default
 *     }
 *   }
 * }).pipe(Layer.provide(TokenEndpoint.layerDefault))
 * ```
 *
 * @since 0.3.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { AccessToken } from "./AccessToken.js"
import * as internal from "./internal/dpop.js"

/**
 * The signature algorithms a proof key may use. `ES256` is the default and the one every DPoP server supports.
 *
 * @since 0.3.0
 * @category models
 */
export const Algorithm = Schema.Literal("ES256", "ES384", "ES512", "PS256", "RS256", "EdDSA")

/**
 * @since 0.3.0
 * @category models
 */
export type Algorithm = typeof Algorithm.Type

/**
 * How a token client uses DPoP: `true` for ES256 proofs, `{ algorithm }` for another algorithm, `false` or absent
 * for bearer tokens.
 *
 * @since 0.3.0
 * @category models
 */
export const Setting = Schema.Union(
  Schema.Boolean,
  Schema.Struct({ algorithm: Schema.optional(Algorithm) })
)

/**
 * @since 0.3.0
 * @category models
 */
export type Setting = typeof Setting.Type

/**
 * The algorithm of a client's proof keys, or `undefined` when the client does not use DPoP.
 *
 * @since 0.3.0
 * @category accessors
 */
export const algorithmOf = (setting: Setting | undefined): Algorithm | undefined =>
  setting === undefined || setting === false ? undefined : setting === true ? "ES256" : setting.algorithm ?? "ES256"

/**
 * A new proof key: a private JWK (with `alg`) as JSON, `Redacted`.
 *
 * @since 0.3.0
 * @category constructors
 */
export const generateKey: (algorithm?: Algorithm) => Effect.Effect<Redacted.Redacted<string>> = (algorithm = "ES256") =>
  internal.generate(algorithm)

/**
 * The JWK thumbprint (RFC 7638) of a proof key's public part: what the provider puts in a bound token's
 * `cnf.jkt`.
 *
 * @since 0.3.0
 * @category accessors
 */
export const thumbprint = (key: Redacted.Redacted<string>): string => internal.load(key).thumbprint

/**
 * A proof for one request with a key (`typ: dpop+jwt`, the public JWK in the header, a fresh `jti`, `iat` from
 * the Effect `Clock`): with `accessToken`, its `ath`; with `nonce`, the server's nonce. `htu` is `url` without
 * its query and fragment. The named clients make these for you; this is for requests made otherwise.
 *
 * @example
 * ```ts
 * import { AccessToken, DPoP } from "@effect-atm/core"
 * import { Effect, Redacted } from "effect"
 *
 * declare const token: AccessToken.AccessToken // a DPoP-bound token, with its `dpopKey`
 *
 * const headers = Effect.gen(function*() {
 *   const proof = yield* DPoP.proof(token.dpopKey!, { method: "GET", url: "https://api.example.com/data", token })
 *   return { authorization: AccessToken.authorization(token), dpop: Redacted.value(proof) }
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const proof = (
  key: Redacted.Redacted<string>,
  request: {
    readonly method: string
    readonly url: string
    readonly token?: AccessToken | undefined
    readonly nonce?: string | undefined
  }
): Effect.Effect<Redacted.Redacted<string>> =>
  Effect.map(Clock.currentTimeMillis, (now) =>
    Redacted.make(internal.proof(internal.load(key), {
      htm: request.method,
      htu: request.url,
      iat: Math.floor(now / 1000),
      ath: request.token === undefined ? undefined : internal.athOfToken(request.token.accessToken),
      nonce: request.nonce
    })))
