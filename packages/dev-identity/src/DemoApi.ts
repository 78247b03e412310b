/**
 * A protected API for examples and tests: it accepts JWT access tokens issued for its audience by the
 * `IdentityProvider` (or any issuer you point it at) and echoes what it saw.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { IdentityProvider } from "./IdentityProvider.js"
import * as internal from "./internal/demoApi.js"

/**
 * The demo API, listening on 127.0.0.1.
 *
 * Every request must carry `Authorization: Bearer <jwt>`, or `Authorization: DPoP <jwt>` with a `DPoP` proof for a
 * DPoP-bound token. The token is verified with the issuer's JWKS: signature (RS256 or ES256), `iss`, `aud` and
 * `exp` (no clock tolerance). A missing or invalid token gets 401 with
 * `WWW-Authenticate: Bearer realm="demo-api", error="invalid_token", error_description="..."`; a valid one gets
 * 200 with the JSON echo `{ sub, client_id, scope, aud, jti, exp, path }` for any GET path, with the token's `cnf`
 * too when it is sender-constrained (`{ jkt }` for DPoP, `{ "x5t#S256" }` for a certificate).
 *
 * A DPoP-bound token (with `cnf.jkt`) is refused as a bearer token. Its proof (RFC 9449 §4.3, §7) must be a
 * `dpop+jwt` signed by the key in its header, whose thumbprint is the token's `cnf.jkt`; for this method (`htm`)
 * and URL without query (`htu`); with `ath` = SHA-256 of the token; an `iat` within `dpopWindowSeconds`; a `jti`
 * never seen before; and, when nonces are required, the API's current nonce. A refused proof gets 401
 * `WWW-Authenticate: DPoP error="invalid_dpop_proof"`; a missing or stale nonce gets 401
 * `WWW-Authenticate: DPoP error="use_dpop_nonce"` with a `DPoP-Nonce` header.
 *
 * @example
 * ```ts
 * import { DemoApi } from "@effect-atm/dev-identity"
 * import { Effect } from "effect"
 *
 * // exercises a client's retry on 401: the next valid token is refused once, as if it had been revoked
 * const revokeOnce = Effect.flatMap(DemoApi.DemoApi, (api) => api.rejectNextValidTokens(1))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class DemoApi extends Context.Tag("@effect-atm/dev-identity/DemoApi")<DemoApi, {
  /** e.g. `"http://127.0.0.1:41235"` (no trailing slash) */
  readonly url: string
  /**
   * The same API on https, asking for a client certificate: where certificate-bound tokens (`cnf.x5t#S256`, RFC
   * 8705) are accepted, when the connection presents their certificate. Its server certificate is issued by the
   * provider's `testCertificates.ca`.
   *
   * @since 0.3.0
   */
  readonly mtlsUrl: string
  /** the audience tokens must be issued for, `"urn:effect-atm:demo-api"` unless configured */
  readonly audience: string
  /** answers 401 `invalid_token` to the next `n` requests that carry a valid token (as if it was revoked) */
  readonly rejectNextValidTokens: (n: number) => Effect.Effect<void>
  /** number of requests received, whatever their outcome */
  readonly requests: Effect.Effect<number>
  /**
   * Whether every DPoP proof must carry the API's current nonce (a proof without it gets a `use_dpop_nonce`
   * challenge with the nonce). Starts as `Options.requireDPoPNonce`.
   *
   * @since 0.3.0
   */
  readonly requireDPoPNonce: (required: boolean) => Effect.Effect<void>
  /**
   * Answers the next `n` requests with a valid DPoP proof with a `use_dpop_nonce` challenge and a new nonce
   * (the previous one is no longer accepted), as an API that rotates its nonce does.
   *
   * @since 0.3.0
   */
  readonly demandFreshDPoPNonce: (n: number) => Effect.Effect<void>
}>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** port on 127.0.0.1; 0 (the default) picks a free one */
  readonly port?: number | undefined
  /** accepted audience (default `"urn:effect-atm:demo-api"`) */
  readonly audience?: string | undefined
  /**
   * Require the API's nonce in every DPoP proof from the start (default false).
   *
   * @since 0.3.0
   */
  readonly requireDPoPNonce?: boolean | undefined
  /**
   * How far a DPoP proof's `iat` may be from the API's clock, in seconds (default 60).
   *
   * @since 0.3.0
   */
  readonly dpopWindowSeconds?: number | undefined
}

/**
 * Options to run the API against any issuer, e.g. a real identity provider.
 *
 * @since 0.1.0
 * @category models
 */
export interface StandaloneOptions extends Options {
  /** expected `iss` */
  readonly issuer: string
  /** where the issuer publishes its signing keys */
  readonly jwksUri: string
}

/**
 * Starts the API; it is closed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: StandaloneOptions) => Effect.Effect<DemoApi["Type"], never, Scope.Scope> = internal.make

/**
 * The API for the embedded `IdentityProvider`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<DemoApi, never, IdentityProvider> =>
  Layer.scoped(
    DemoApi,
    Effect.flatMap(IdentityProvider, (provider) =>
      internal.make({ ...options, issuer: provider.issuer, jwksUri: provider.jwksUri }))
  )

/**
 * The API for any issuer, without the embedded provider.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerStandalone = (options: StandaloneOptions): Layer.Layer<DemoApi> =>
  Layer.scoped(DemoApi, internal.make(options))

/**
 * The API for any issuer, configured with Effect `Config`.
 *
 * @example
 * ```ts
 * import { DemoApi } from "@effect-atm/dev-identity"
 * import { Config } from "effect"
 *
 * // DEMO_API_ISSUER=https://login.example.com DEMO_API_JWKS_URI=https://login.example.com/jwks
 * const Api = DemoApi.layerConfig({
 *   issuer: Config.string("DEMO_API_ISSUER"),
 *   jwksUri: Config.string("DEMO_API_JWKS_URI"),
 *   audience: Config.string("DEMO_API_AUDIENCE").pipe(Config.withDefault("urn:effect-atm:demo-api")),
 *   port: Config.integer("DEMO_API_PORT").pipe(Config.withDefault(0))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config.Wrap<StandaloneOptions>
): Layer.Layer<DemoApi, ConfigError.ConfigError> =>
  Layer.scoped(DemoApi, Effect.flatMap(Config.unwrap(options), internal.make))
