/**
 * An embedded OpenID Provider for examples, tests and benchmarks: a real `oidc-provider` on 127.0.0.1 with
 * built-in clients, two protected resources, any user you name, counters and fault injection on its token
 * endpoint, and a browserless `authorize` for the authorization code flow.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/identityProvider.js"

/**
 * The embedded OpenID Provider.
 *
 * @example
 * ```ts
 * import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
 * import { Effect, Layer } from "effect"
 *
 * const DevIdentity = DemoApi.layer().pipe(Layer.provideMerge(IdentityProvider.layer()))
 *
 * // a resource server test: the demo API refuses a token that expired a second ago
 * const expiredTokenIsRefused = Effect.gen(function*() {
 *   const op = yield* IdentityProvider.IdentityProvider
 *   const api = yield* DemoApi.DemoApi
 *   const token = yield* op.mintAccessToken({ sub: "alice", expiresIn: -1 })
 *   const response = yield* Effect.promise(() =>
 *     fetch(`${api.url}/data`, { headers: { authorization: `Bearer ${token}` } })
 *   )
 *   return response.status // 401
 * }).pipe(Effect.provide(DevIdentity))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class IdentityProvider extends Context.Tag("@effect-atm/dev-identity/IdentityProvider")<IdentityProvider, {
  /** the issuer identifier, e.g. `"http://127.0.0.1:41234"` (no trailing slash) */
  readonly issuer: string
  /** `${issuer}/.well-known/openid-configuration` */
  readonly discoveryUrl: string
  readonly tokenEndpoint: string
  readonly revocationEndpoint: string
  readonly introspectionEndpoint: string
  readonly jwksUri: string
  readonly authorizationEndpoint: string
  readonly endSessionEndpoint: string
  /**
   * number of requests that reached the token endpoint (successful or not, faulted or not), optionally filtered:
   * by grant type, client, whether the request carried a `client_assertion` (private_key_jwt, client_secret_jwt;
   * since 0.3.0) and whether it carried a DPoP proof (since 0.3.0)
   */
  readonly tokenRequests: (
    filter?: {
      readonly grantType?: string | undefined
      readonly clientId?: string | undefined
      readonly clientAssertion?: boolean | undefined
      readonly dpop?: boolean | undefined
    }
  ) => Effect.Effect<number>
  /**
   * Whether the token endpoint demands a DPoP nonce: a proof without the provider's current nonce is answered
   * `400 use_dpop_nonce` with a `DPoP-Nonce` header (RFC 9449 §8). Starts as `Options.requireDPoPNonce`.
   *
   * @since 0.3.0
   */
  readonly requireDPoPNonce: (required: boolean) => Effect.Effect<void>
  /** sets every token endpoint counter back to zero */
  readonly resetCounters: Effect.Effect<void>
  /**
   * Injects a fault into the token endpoint. It applies to the next `times` requests, or until it is replaced or
   * cleared with `setTokenFault(undefined)` when `times` is not given.
   */
  readonly setTokenFault: (
    fault: TokenEndpointFault | undefined,
    options?: { readonly times?: number | undefined }
  ) => Effect.Effect<void>
  /**
   * RFC 7662 introspection with the `web` client's credentials: `{ active: boolean, sub?, client_id?, scope?, ... }`.
   * Opaque tokens (refresh tokens) go to the introspection endpoint. oidc-provider does not introspect JWT access
   * tokens, so these are checked locally instead: signature by this provider, issuer and expiry; `active` is
   * `true` with the token's claims when they hold.
   */
  readonly introspect: (token: string) => Effect.Effect<{ readonly active: boolean } & Record<string, unknown>>
  /**
   * Completes an authorization request without a browser: takes the full authorization URL built by the relying
   * party (e.g. openid-client `buildAuthorizationUrl` with PKCE, state and nonce), signs `account` in at the
   * provider's login page over HTTP, grants consent, and returns the URL the browser would have been redirected
   * to: the relying party's `redirect_uri` with `code` and `state` (or with `error` when the provider refused the
   * request after validating the redirect URI, e.g. `invalid_scope`).
   */
  readonly authorize: (authorizationUrl: URL | string, account: string) => Effect.Effect<URL, AuthorizeError>
  /**
   * Signs an access token with the provider's own key, as the provider would issue it, with any expiry (negative
   * `expiresIn` gives an expired token). For tests of resource servers; the provider keeps no record of it.
   */
  readonly mintAccessToken: (options?: MintOptions) => Effect.Effect<string>
  /**
   * Signs a back-channel logout token as the provider sends one when a session ends (OpenID Connect Back-Channel
   * Logout 1.0, 2.4): `typ: logout+jwt`, the logout event, a new `jti`, issued now. For tests of a receiver (e.g.
   * a token replayed to another instance); the provider ends no session and keeps no record of it.
   *
   * @since 0.3.0
   */
  readonly mintLogoutToken: (options: MintLogoutOptions) => Effect.Effect<string>
  /**
   * The private keys registered (public part) for `Clients.machinePrivateKeyJwt`, made at start-up: an ES256 key
   * as a PKCS#8 PEM, an RSA key as a private JWK (JSON, with its `kid`) and an Ed25519 key (`EdDSA`, RFC 8037;
   * FAPI 2.0 allows it beside PS256 and ES256) both ways (`ed25519`).
   *
   * @since 0.3.0
   */
  readonly clientPrivateKeys: {
    readonly pem: string
    readonly jwk: string
    readonly ed25519: { readonly pem: string; readonly jwk: string }
  }
  /**
   * The token endpoint on the provider's https listener, which asks for a client certificate (RFC 8705); its
   * server certificate is issued by `testCertificates.ca`.
   *
   * @since 0.3.0
   */
  readonly mtlsTokenEndpoint: string
  /**
   * The revocation endpoint on the https listener.
   *
   * @since 0.3.0
   */
  readonly mtlsRevocationEndpoint: string
  /**
   * The test CA made at start-up (once per process, with the `openssl` CLI) and the certificates it issued: the
   * https listeners' (for 127.0.0.1), the `machine-tls` client's, and the self-signed certificate of
   * `machine-self-signed-tls`. Development material only.
   *
   * @since 0.3.0
   */
  readonly testCertificates: {
    readonly ca: string
    readonly server: { readonly certificate: string; readonly key: string }
    readonly client: { readonly certificate: string; readonly key: string }
    readonly selfSigned: { readonly certificate: string; readonly key: string }
  }
}>() {}

/**
 * A fault injected into the token endpoint with `setTokenFault`.
 *
 * - `Delay`: waits `millis`, then lets the request proceed (a request its client abandons meanwhile is not handled).
 * - `LateAnswer`: lets the request proceed at once — the provider handles it, rotating a refresh token — and
 *   sends the answer `millis` later: a client that abandons the request meanwhile loses the rotated token (since
 *   0.3.0).
 * - `ServerError`: answers `status` (default 503; 429 works too) with an HTML body, and a `Retry-After` header
 *   when `retryAfter` is given (seconds, or an HTTP date as a string).
 * - `EmptyBody`: answers `status` (e.g. 400, 401, 403) with an empty body, as some providers reject a client or a
 *   refresh token.
 * - `HugeBody`: answers 200 `application/json` with a body of `bytes` bytes (a token response that never ends).
 * - `Downtime`: answers `status` (default 503) to every request for `millis` (wall clock) from when it is set,
 *   then clears itself; `times` does not apply.
 * - `ConnectionReset`: closes the connection without answering (the client sees a reset or a hang-up): a
 *   provider that is unreachable. The request never reaches the provider.
 * - `NonJson`: answers 200 `text/html`.
 * - `MalformedJson`: answers 200 `application/json` that is JSON but not a token response (`{"foo":1}`).
 * - `TruncatedJson`: answers 200 `application/json` whose body is not valid JSON.
 * - `WrongTokenType`: lets the request proceed, then rewrites `token_type` to `"mac"`.
 * - `MissingExpiresIn`: lets the request proceed, then removes `expires_in`.
 * - `MissingAccessToken`: lets the request proceed, then removes `access_token` (a rotated `refresh_token`
 *   stays in the response).
 *
 * Faulted requests are counted by `tokenRequests` like any other.
 *
 * @example
 * ```ts
 * import { IdentityProvider } from "@effect-atm/dev-identity"
 * import { Effect } from "effect"
 *
 * // the provider is down for the next two token requests, then answers normally again
 * const outage = Effect.flatMap(
 *   IdentityProvider.IdentityProvider,
 *   (op) => op.setTokenFault({ _tag: "ServerError", status: 503 }, { times: 2 })
 * )
 * // a slow provider until cleared with `setTokenFault(undefined)`: exercises the token request timeout
 * const slow = Effect.flatMap(
 *   IdentityProvider.IdentityProvider,
 *   (op) => op.setTokenFault({ _tag: "Delay", millis: 15_000 })
 * )
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export type TokenEndpointFault =
  | { readonly _tag: "Delay"; readonly millis: number }
  | {
    /** @since 0.3.0 */
    readonly _tag: "LateAnswer"
    readonly millis: number
  }
  | {
    readonly _tag: "ServerError"
    readonly status?: number | undefined
    /** @since 0.2.0 */
    readonly retryAfter?: number | string | undefined
  }
  | {
    /** @since 0.3.0 */
    readonly _tag: "ConnectionReset"
  }
  | { readonly _tag: "NonJson" }
  | { readonly _tag: "MalformedJson" }
  | { readonly _tag: "TruncatedJson" }
  | { readonly _tag: "WrongTokenType" }
  | { readonly _tag: "MissingExpiresIn" }
  | { readonly _tag: "MissingAccessToken" }
  | { readonly _tag: "EmptyBody"; readonly status: number }
  | { readonly _tag: "HugeBody"; readonly bytes: number }
  | { readonly _tag: "Downtime"; readonly millis: number; readonly status?: number | undefined }

/**
 * Client metadata as registered with oidc-provider (snake_case, e.g. `client_id`, `client_secret`,
 * `grant_types`, `redirect_uris`, `token_endpoint_auth_method`, `scope`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ClientMetadata {
  readonly client_id: string
  readonly client_secret?: string | undefined
  readonly [key: string]: unknown
}

/**
 * A protected resource (API) known to the provider, by resource indicator (RFC 8707).
 *
 * @since 0.1.0
 * @category models
 */
export interface ResourceServer {
  /** space-separated scopes of this resource */
  readonly scope: string
  /** access token lifetime in seconds for this resource; `Options.accessTokenTtl` when not given */
  readonly accessTokenTtl?: number | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** port on 127.0.0.1; 0 (the default) picks a free one */
  readonly port?: number | undefined
  /** access token lifetime in seconds (default 300) */
  readonly accessTokenTtl?: number | undefined
  /** refresh token lifetime in seconds (default 86400); every rotated refresh token gets this lifetime again */
  readonly refreshTokenTtl?: number | undefined
  /**
   * Whether a refresh rotates the refresh token (default true). With false, a refresh answers without a new
   * refresh token and the same one stays valid, as many providers do.
   *
   * @since 0.2.0
   */
  readonly rotateRefreshTokens?: boolean | undefined
  /** more clients, registered next to the built-in ones */
  readonly clients?: ReadonlyArray<ClientMetadata> | undefined
  /** more resources, next to `urn:effect-atm:demo-api` and `urn:effect-atm:other-api` (same key replaces) */
  readonly resources?: Readonly<Record<string, ResourceServer>> | undefined
  /**
   * Redirect URIs accepted for the built-in web clients besides the loopback ones (any
   * `http://127.0.0.1:<port>/...` or `http://localhost:<port>/...` is always accepted).
   */
  readonly redirectUris?: ReadonlyArray<string> | undefined
  /** post-logout redirect URIs accepted for the built-in web clients besides the loopback ones */
  readonly postLogoutRedirectUris?: ReadonlyArray<string> | undefined
  /**
   * The built-in `web` client's `backchannel_logout_uri` (with `backchannel_logout_session_required`): when a
   * provider session ends (the user signs out at the provider, or through any client's RP-initiated logout), the
   * provider POSTs a logout token there (OpenID Connect Back-Channel Logout 1.0). `OidcLogin` receives it at
   * `<baseUrl>/auth/backchannel-logout`. Default: none.
   *
   * @since 0.3.0
   */
  readonly backchannelLogoutUri?: string | undefined
  /**
   * Demand a DPoP nonce at the token endpoint from the start (default false; see
   * `IdentityProvider.requireDPoPNonce`). DPoP itself is always on: proofs are verified, DPoP-bound tokens
   * issued to clients that send one, and required from the `dpop_bound_access_tokens` clients.
   *
   * @since 0.3.0
   */
  readonly requireDPoPNonce?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MintOptions {
  /** subject (default `"alice"`) */
  readonly sub?: string | undefined
  /** `client_id` claim (default `"web"`) */
  readonly clientId?: string | undefined
  /** `scope` claim (default `"api.read api.write"`) */
  readonly scope?: string | undefined
  /** audience (default `urn:effect-atm:demo-api`) */
  readonly audience?: string | undefined
  /** seconds from now until `exp`; negative for an expired token (default `Options.accessTokenTtl`) */
  readonly expiresIn?: number | undefined
  /** signing algorithm (default RS256) */
  readonly alg?: "RS256" | "ES256" | undefined
}

/**
 * @since 0.3.0
 * @category models
 */
export interface MintLogoutOptions {
  /** the provider session ended (`sid` claim); a logout token names a `sid`, a `sub` or both */
  readonly sid?: string | undefined
  readonly sub?: string | undefined
  /** audience: the receiving client (default `"web"`) */
  readonly audience?: string | undefined
}

/**
 * `authorize` could not take the authorization request to a redirect back to the relying party: the provider
 * showed an error page (e.g. unknown client or redirect URI, missing PKCE), refused the login (invalid account
 * id), or could not be reached.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthorizeError extends Schema.TaggedError<AuthorizeError>()("AuthorizeError", {
  reason: Schema.String,
  status: Schema.optional(Schema.Number)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `The dev identity provider did not complete the authorization request: ${this.reason}` +
      (this.status === undefined ? "" : ` (HTTP ${this.status})`) +
      ". Check the client id, redirect_uri, PKCE parameters and account id in the authorization URL."
  }
}

/**
 * Resource indicators (RFC 8707) of the built-in protected resources.
 *
 * @since 0.1.0
 * @category constants
 */
export const Resources = {
  /** the demo API (`DemoApi`); scopes `api.read api.write`; the default resource */
  demoApi: "urn:effect-atm:demo-api",
  /** a second API for per-resource tokens; scope `other.read` */
  otherApi: "urn:effect-atm:other-api"
} as const

/**
 * Credentials of the built-in clients. These are fixed, public development secrets.
 *
 * - `machineBasic`, `machinePost`: `client_credentials`, authenticating with `client_secret_basic` /
 *   `client_secret_post`; scope `api.read api.write other.read`.
 * - `machineSecretJwt`, `machinePrivateKeyJwt`: the same, authenticating with `client_secret_jwt` /
 *   `private_key_jwt` (the private keys of the latter are made at start-up: `IdentityProvider.clientPrivateKeys`).
 * - `machineTls`, `machineSelfSignedTls`: the same, authenticating with `tls_client_auth` (the CA-issued
 *   `testCertificates.client`, subject `CN=machine-tls`) / `self_signed_tls_client_auth`
 *   (`testCertificates.selfSigned`) at `mtlsTokenEndpoint`; their access tokens are bound to the certificate
 *   (`cnf.x5t#S256`, RFC 8705). Discovery lists the https listener's endpoints as `mtls_endpoint_aliases`.
 * - `web`, `webPost`: confidential web apps, `authorization_code` (PKCE S256 required) and `refresh_token`,
 *   authenticating with `client_secret_basic` / `client_secret_post`; scope
 *   `openid profile email offline_access api.read api.write other.read`.
 * - `webPrivateKeyJwt`: as `web`, authenticating with `private_key_jwt` (the keys of `clientPrivateKeys`); it
 *   accepts DPoP proofs too.
 * - `webTls`: as `web`, authenticating with `tls_client_auth` (the certificate of `machineTls`); its access
 *   tokens are bound to the certificate.
 * - `machineDpop`, `webDpop`: as `machineBasic` and `web`, but their access tokens must be DPoP-bound
 *   (`dpop_bound_access_tokens`): a token request without a DPoP proof is refused.
 * - `publicDpop`: a public client (no secret, `token_endpoint_auth_method: none`) of the code flow with refresh
 *   tokens, DPoP-bound: its refresh tokens are bound to the key of the code exchange too.
 *
 * @since 0.1.0
 * @category constants
 */
export const Clients = {
  machineBasic: { clientId: "machine-basic", clientSecret: "machine-basic-secret" },
  machinePost: { clientId: "machine-post", clientSecret: "machine-post-secret" },
  machineSecretJwt: {
    clientId: "machine-secret-jwt",
    clientSecret: "machine-secret-jwt-secret-0123456789abcdef0123456789abcdef"
  },
  machinePrivateKeyJwt: { clientId: "machine-private-key-jwt" },
  machineTls: { clientId: "machine-tls" },
  machineSelfSignedTls: { clientId: "machine-self-signed-tls" },
  web: { clientId: "web", clientSecret: "web-secret" },
  webPost: { clientId: "web-post", clientSecret: "web-post-secret" },
  /** @since 0.3.0 */
  machineDpop: { clientId: "machine-dpop", clientSecret: "machine-dpop-secret" },
  /** @since 0.3.0 */
  webDpop: { clientId: "web-dpop", clientSecret: "web-dpop-secret" },
  webPrivateKeyJwt: { clientId: "web-private-key-jwt" },
  /** @since 0.3.0 */
  webTls: { clientId: "web-tls" },
  /** @since 0.3.0 */
  publicDpop: { clientId: "public-dpop" }
} as const

/**
 * Defaults of `Options`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaults = {
  port: 0,
  accessTokenTtl: 300,
  refreshTokenTtl: 86400
} as const

/**
 * Starts the provider; it is closed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: Options) => Effect.Effect<IdentityProvider["Type"], never, Scope.Scope> = internal.make

/**
 * The provider as a scoped layer: started when the layer is built, closed on release.
 *
 * @example
 * ```ts
 * import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
 * import { Effect, Layer } from "effect"
 *
 * const DevIdentity = DemoApi.layer().pipe(Layer.provideMerge(IdentityProvider.layer({ accessTokenTtl: 60 })))
 *
 * Effect.gen(function*() {
 *   const op = yield* IdentityProvider.IdentityProvider
 *   console.log(op.issuer, op.tokenEndpoint)
 * }).pipe(Effect.provide(DevIdentity))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<IdentityProvider> => Layer.scoped(IdentityProvider, make(options))
