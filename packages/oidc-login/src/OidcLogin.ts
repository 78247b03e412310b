/**
 * OpenID Connect sign-in for an `@effect/platform` HTTP server: the authorization code flow with PKCE, a
 * server-side session behind a signed cookie, and `CurrentUser` provided to each request and to each websocket
 * connection of a signed-in browser. The sign-in seeds the user token store through `OidcEvents.tokenValidated`;
 * the sign-out revokes and clears it through `OidcEvents.signingOut`. Tokens never reach the browser.
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, ClusterEvents } from "@effect-atm/core"
 * import { OidcLogin, SessionStore } from "@effect-atm/oidc-login"
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { Layer, Redacted } from "effect"
 *
 * const client = { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("…") }
 *
 * const app = HttpRouter.empty.pipe(
 *   HttpRouter.get("/", HttpServerResponse.text("hello").pipe(OidcLogin.requireUser())),
 *   HttpRouter.mount("/auth", OidcLogin.router)
 * )
 *
 * const LoginLive = OidcLogin.layer({ client, baseUrl: "https://app.example.com" }).pipe(
 *   Layer.provide([SessionStore.layerMemory(), ClusterEvents.layerMemory]),
 *   // one process: tokens in memory (for several, see AccessTokenManagement.layerServer)
 *   Layer.provideMerge(AccessTokenManagement.layerServerMemory({ client }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import type { ClusterEvents } from "@effect-atm/core/ClusterEvents"
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import type { OidcEvents } from "@effect-atm/core/OidcEvents"
import * as TokenClient from "@effect-atm/core/TokenClient"
import type { TokenEndpoint } from "@effect-atm/core/TokenEndpoint"
import type { InvalidClientConfiguration } from "@effect-atm/core/TokenError"
import { isSignInRequired } from "@effect-atm/core/TokenError"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Socket from "@effect/platform/Socket"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as internal from "./internal/oidcLogin.js"
import type { CallbackError, InvalidLoginConfiguration, ProviderUnavailable, SessionStoreError } from "./LoginError.js"
import type { Session } from "./Session.js"
import type { SessionStore } from "./SessionStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface SessionOptions {
  /** A session not used for this long ends. Default: 1 hour. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** A session ends this long after sign-in, used or not. Default: 12 hours. */
  readonly absoluteTimeout?: Duration.DurationInput | undefined
  /**
   * The key that signs cookies (HMAC-SHA256), at least 32 characters of random data. Give the same one to every
   * instance that shares a `SessionStore`. Default: random per process (sessions end when it restarts).
   */
  readonly secret?: Redacted.Redacted<string> | undefined
  /** Keys that signed cookies before `secret` replaced them: still accepted, never used to sign. */
  readonly previousSecrets?: ReadonlyArray<Redacted.Redacted<string>> | undefined
  /** The session cookie's name (prefixed with `__Host-` over https). Default: `atm_session`. */
  readonly cookieName?: string | undefined
  /** The pre-login cookie's name (prefixed with `__Host-` over https). Default: `atm_login`. */
  readonly loginCookieName?: string | undefined
  /** How often a long-lived connection (websocket) checks that its session still exists. Default: 30 seconds. */
  readonly connectionCheckInterval?: Duration.DurationInput | undefined
  /**
   * How often expired sessions (idle or absolute) are taken out of the store, their connections closed and their
   * tokens revoked and cleared. Default: 1 minute.
   *
   * @since 0.3.0
   */
  readonly sweepInterval?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The OpenID Connect client — the same configuration as `UserTokens.layer`'s `client`. `issuer` is required:
   * the authorization and end-session endpoints are discovered from it.
   */
  readonly client: TokenClient.TokenClientInput | TokenClient.TokenClient
  /**
   * The origin the browser reaches the application at, e.g. `https://app.example.com`. http:// is accepted on
   * loopback only (127.0.0.1, localhost, [::1]); everywhere else cookies are `Secure` and `__Host-` prefixed.
   */
  readonly baseUrl: string
  /** Where `router` is mounted. Default: `/auth` (routes `/auth/login`, `/auth/callback`, `/auth/logout`). */
  readonly path?: `/${string}` | undefined
  /** The redirect URI registered at the provider. Default: `baseUrl` + `path` + `/callback`. */
  readonly redirectUri?: string | undefined
  /** Where the provider sends the browser after sign-out. Default: `baseUrl` + `/`. */
  readonly postLogoutRedirectUri?: string | undefined
  /** Must include `openid`; `offline_access` gets a refresh token. Default: `openid profile email offline_access`. */
  readonly scope?: string | undefined
  /** The resource (RFC 8707) the sign-in's access token is for, and stored under. */
  readonly resource?: string | undefined
  /** Further parameters of every authorization request (e.g. `{ prompt: "login" }`). */
  readonly parameters?: Readonly<Record<string, string>> | undefined
  readonly session?: SessionOptions | undefined
  /** How long a started sign-in may take to come back. Default: 10 minutes. */
  readonly loginTimeout?: Duration.DurationInput | undefined
  /** How long the code exchange may take. Default: 10 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * What RP-initiated logout tells the provider about the session to end. `"id_token_hint"` (the default, what
   * every provider accepts): the ID token goes in the end-session URL, so it passes through the browser (its
   * history, and the provider's logs) — it proves who signed in, it grants no access to APIs. `"logout_hint"`:
   * `client_id` and `logout_hint` (the subject) instead, so no token reaches the browser; the provider may then
   * ask the user to confirm the sign-out.
   *
   * @since 0.3.0
   */
  readonly endSessionHint?: "id_token_hint" | "logout_hint" | undefined
  /**
   * Limits of `websocket` connections.
   *
   * @since 0.3.0
   */
  readonly websocket?: WebsocketOptions | undefined
}

/**
 * @since 0.3.0
 * @category models
 */
export interface WebsocketOptions {
  /**
   * The largest message a browser may send, in bytes; a larger one closes the connection (1009, message too big).
   * Default: 64 KiB. (The `ws` server of @effect/platform-node still reads a frame up to its own limit, 100 MiB,
   * before the connection sees it: the per-session connection limit bounds how many can be in flight.)
   */
  readonly maxMessageBytes?: number | undefined
  /** How many connections one session may hold at once; more are refused with 429. Default: 10. */
  readonly maxConnectionsPerSession?: number | undefined
}

/**
 * The validated configuration, with everything derived from it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  readonly client: TokenClient.TokenClient
  readonly issuer: string
  /** The origin of `baseUrl`: requests that carry another `Origin` are refused where it matters. */
  readonly origin: string
  readonly path: string
  readonly loginPath: string
  readonly callbackPath: string
  readonly logoutPath: string
  readonly redirectUri: string
  readonly postLogoutRedirectUri: string
  readonly scope: string
  readonly resource: string | undefined
  readonly parameters: Readonly<Record<string, string>>
  readonly secure: boolean
  readonly sessionCookie: string
  readonly loginCookie: string
  readonly idleTimeoutMillis: number
  readonly absoluteTimeoutMillis: number
  readonly connectionCheckMillis: number
  readonly sweepIntervalMillis: number
  readonly endSessionHint: "id_token_hint" | "logout_hint"
  readonly maxMessageBytes: number
  readonly maxConnectionsPerSession: number
  readonly loginTimeoutMillis: number
  readonly timeoutMillis: number
}

/**
 * Who a request comes from: a signed-in session, nobody (no cookie), or a cookie that was refused — its signature
 * does not verify (`invalid-cookie`, e.g. tampered) or its session is gone (`expired`, or signed out).
 *
 * @since 0.1.0
 * @category models
 */
export type Authentication =
  | { readonly _tag: "Authenticated"; readonly session: Session }
  | { readonly _tag: "Anonymous" }
  | { readonly _tag: "Rejected"; readonly reason: "invalid-cookie" | "expired" }

/**
 * Options of one sign-in.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoginOptions {
  /** A path on this site to go to after sign-in (anything else becomes `/`). */
  readonly returnTo?: string | undefined
  readonly scope?: string | undefined
  readonly resource?: string | undefined
  /** Further authorization request parameters, e.g. `{ prompt: "login", login_hint: "alice" }`. */
  readonly parameters?: Readonly<Record<string, string>> | undefined
}

/**
 * The login service, for routes `router` does not cover: a sign-in with other parameters, or ending a session
 * from elsewhere than the browser that owns it.
 *
 * @example
 * ```ts
 * import { OidcLogin } from "@effect-atm/oidc-login"
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { Effect, Schema } from "effect"
 *
 * const routes = HttpRouter.empty.pipe(
 *   // step-up before the admin pages: the provider asks for the password again, whoever is signed in
 *   HttpRouter.get(
 *     "/admin/login",
 *     Effect.flatMap(OidcLogin.OidcLogin, (login) =>
 *       login.login({ returnTo: "/admin", parameters: { prompt: "login", max_age: "0" } }))
 *   ),
 *   // an operator ends a user's session: its websockets close, its refresh token is revoked, its tokens cleared
 *   HttpRouter.post(
 *     "/admin/sessions/:id/end",
 *     Effect.gen(function*() {
 *       const { id } = yield* HttpRouter.schemaPathParams(Schema.Struct({ id: Schema.String }))
 *       const login = yield* OidcLogin.OidcLogin
 *       yield* login.endSession(id)
 *       return HttpServerResponse.empty({ status: 204 })
 *     }).pipe(OidcLogin.requireUser({ onMissing: "unauthorized" })) // and check the user's role
 *   )
 * )
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class OidcLogin extends Context.Tag("@effect-atm/oidc-login/OidcLogin")<OidcLogin, {
  readonly settings: Settings
  /** Who the request comes from, by its session cookie (signature checked first, then the store). */
  readonly authenticate: (
    request: HttpServerRequest.HttpServerRequest
  ) => Effect.Effect<Authentication, SessionStoreError>
  /**
   * The session of a session cookie's value: its signature is checked first (no store lookup for a forged one),
   * then the store. For transports outside the router, and for tests and admin tools.
   */
  readonly sessionFromCookie: (value: string) => Effect.Effect<Option.Option<Session>, SessionStoreError>
  /** Starts a sign-in: seals it in the pre-login cookie (nothing is stored) and redirects to the provider. */
  readonly login: (
    options?: LoginOptions
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse, ProviderUnavailable | SessionStoreError>
  /** Completes a sign-in: checks the callback, exchanges the code, stores the tokens, starts the session. */
  readonly callback: (
    request: HttpServerRequest.HttpServerRequest
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse, CallbackError>
  /** Ends the request's session (if any) and redirects to the provider's end-session endpoint. */
  readonly logout: (
    request: HttpServerRequest.HttpServerRequest
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse, SessionStoreError>
  /**
   * Ends a session by id: removes it, ends its connections, revokes and clears its tokens
   * (`OidcEvents.signingOut`). No RP-initiated logout: the browser is not there.
   */
  readonly endSession: (sessionId: string) => Effect.Effect<void, SessionStoreError>
  /**
   * The back-channel logout receiver (OpenID Connect Back-Channel Logout 1.0): validates the `logout_token` of a
   * form POST from the provider — signature by the provider's JWKS, `iss`, `aud`, `iat` (at most 2 minutes old),
   * a `jti` not seen before by this instance, the logout event, no `nonce` — and ends every session of its `sid`
   * (or of its `sub`, without `sid`) on every instance. Answers 200, or 400 with the reason.
   *
   * @since 0.3.0
   */
  readonly backchannelLogout: (
    request: HttpServerRequest.HttpServerRequest
  ) => Effect.Effect<HttpServerResponse.HttpServerResponse>
  /**
   * Ends the sessions past their idle or absolute deadline (their connections here, their tokens revoked and
   * cleared), as the layer does every `sweepInterval`; returns how many.
   *
   * @since 0.3.0
   */
  readonly sweepExpired: Effect.Effect<number, SessionStoreError>
  /**
   * Runs `effect` for a session's user for as long as the session lasts: it is interrupted (after `onEnd`) when
   * the session is signed out here, or found gone at a periodic check (see `connectionCheckInterval`).
   */
  readonly runConnection: <A, E, R>(
    session: Session,
    effect: Effect.Effect<A, E, R>,
    options?: { readonly onEnd?: Effect.Effect<void> | undefined }
  ) => Effect.Effect<void, E, Exclude<R, CurrentUser.CurrentUser>>
  /** Number of connections running (for tests and metrics). */
  readonly connections: Effect.Effect<number>
  /**
   * Number of connections a session holds here (for the per-session limit).
   *
   * @since 0.3.0
   */
  readonly connectionsOf: (sessionId: string) => Effect.Effect<number>
  /** The sign-in URL (server-relative) that returns to `returnTo`. */
  readonly loginUrl: (returnTo?: string) => string
  /** Whether the request has no `Origin` header, or the application's own. */
  readonly isSameOrigin: (request: HttpServerRequest.HttpServerRequest) => boolean
  /** The error page for a failed sign-in. */
  readonly errorResponse: (
    error: { readonly _tag: string; readonly message: string; readonly httpStatus?: number }
  ) => HttpServerResponse.HttpServerResponse
  /** A page with a sign-out button (the sign-out itself is a POST). */
  readonly signOutPage: HttpServerResponse.HttpServerResponse
  /** @internal */
  readonly cookieOptions: {
    readonly path: string
    readonly httpOnly: boolean
    readonly secure: boolean
    readonly sameSite: "lax"
  }
}>() {}

/**
 * Builds the login over the `TokenEndpoint` (discovery), `OidcEvents` (both from `UserTokens.layer` or
 * `AccessTokenManagement.layerServer`), a `SessionStore` and `ClusterEvents`: a session ended on one instance
 * (sign-out, expiry, back-channel logout) closes its connections on every instance that hears of it
 * (`ClusterEvents.layerMemory` for one process; Redis or PostgreSQL for several).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<
  OidcLogin["Type"],
  InvalidLoginConfiguration | InvalidClientConfiguration,
  TokenEndpoint | OidcEvents | SessionStore | ClusterEvents | Scope.Scope
> = internal.make

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  OidcLogin,
  InvalidLoginConfiguration | InvalidClientConfiguration,
  TokenEndpoint | OidcEvents | SessionStore | ClusterEvents
> => Layer.scoped(OidcLogin, make(options))

/**
 * The options from Effect `Config`, nested under `prefix` (default `OIDC`; from the environment: `OIDC_ISSUER`,
 * `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET`, `OIDC_AUTHENTICATION`, `OIDC_BASE_URL`, `OIDC_PATH`, `OIDC_REDIRECT_URI`,
 * `OIDC_POST_LOGOUT_REDIRECT_URI`, `OIDC_SCOPE`, `OIDC_RESOURCE`, `OIDC_SESSION_SECRET`,
 * `OIDC_SESSION_IDLE_TIMEOUT`, `OIDC_SESSION_ABSOLUTE_TIMEOUT`, `OIDC_SESSION_SWEEP_INTERVAL`,
 * `OIDC_END_SESSION_HINT`, `OIDC_WEBSOCKET_MAX_MESSAGE_BYTES`, `OIDC_WEBSOCKET_MAX_CONNECTIONS_PER_SESSION`;
 * durations as `"30 minutes"`).
 *
 * @since 0.1.0
 * @category config
 */
export const config = (prefix = "OIDC"): Config.Config<Options> =>
  Config.all({
    client: TokenClient.config,
    baseUrl: Config.string("BASE_URL").pipe(Config.withDescription("The URL the browser reaches the app at")),
    path: Config.option(Config.string("PATH")),
    redirectUri: Config.option(Config.string("REDIRECT_URI")),
    postLogoutRedirectUri: Config.option(Config.string("POST_LOGOUT_REDIRECT_URI")),
    scope: Config.option(Config.string("SCOPE")),
    resource: Config.option(Config.string("RESOURCE")),
    secret: Config.option(Config.redacted("SESSION_SECRET")),
    idleTimeout: Config.option(Config.duration("SESSION_IDLE_TIMEOUT")),
    absoluteTimeout: Config.option(Config.duration("SESSION_ABSOLUTE_TIMEOUT")),
    sweepInterval: Config.option(Config.duration("SESSION_SWEEP_INTERVAL")),
    endSessionHint: Config.option(Config.literal("id_token_hint", "logout_hint")("END_SESSION_HINT")),
    maxMessageBytes: Config.option(Config.integer("WEBSOCKET_MAX_MESSAGE_BYTES")),
    maxConnectionsPerSession: Config.option(Config.integer("WEBSOCKET_MAX_CONNECTIONS_PER_SESSION"))
  }).pipe(
    Config.map((values): Options => ({
      client: values.client,
      baseUrl: values.baseUrl,
      // the path is checked (with a clear error) when the layer is built
      path: Option.getOrUndefined(values.path) as Options["path"],
      redirectUri: Option.getOrUndefined(values.redirectUri),
      postLogoutRedirectUri: Option.getOrUndefined(values.postLogoutRedirectUri),
      scope: Option.getOrUndefined(values.scope),
      resource: Option.getOrUndefined(values.resource),
      session: {
        secret: Option.getOrUndefined(values.secret),
        idleTimeout: Option.getOrUndefined(values.idleTimeout),
        absoluteTimeout: Option.getOrUndefined(values.absoluteTimeout),
        sweepInterval: Option.getOrUndefined(values.sweepInterval)
      },
      endSessionHint: Option.getOrUndefined(values.endSessionHint),
      websocket: {
        maxMessageBytes: Option.getOrUndefined(values.maxMessageBytes),
        maxConnectionsPerSession: Option.getOrUndefined(values.maxConnectionsPerSession)
      }
    })),
    Config.nested(prefix)
  )

/**
 * The login configured from Effect `Config` (see `config`); an invalid value fails the layer, naming the field.
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, ClusterEvents, TokenClient } from "@effect-atm/core"
 * import { OidcLogin, SessionStore } from "@effect-atm/oidc-login"
 * import { Config, Effect, Layer } from "effect"
 *
 * // OIDC_ISSUER=https://login.example.com OIDC_CLIENT_ID=web OIDC_CLIENT_SECRET=… \
 * // OIDC_BASE_URL=https://app.example.com OIDC_SESSION_SECRET=$(openssl rand -base64 32)
 * const TokensLive = Layer.unwrapEffect(
 *   // the same client for the token managers, from the same variables
 *   Effect.map(Config.nested(TokenClient.config, "OIDC"), (client) => AccessTokenManagement.layerServerMemory({ client }))
 * )
 * const LoginLive = OidcLogin.layerConfig().pipe(
 *   Layer.provide([SessionStore.layerMemory(), ClusterEvents.layerMemory]),
 *   Layer.provideMerge(TokensLive)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = config()
): Layer.Layer<
  OidcLogin,
  InvalidLoginConfiguration | InvalidClientConfiguration | ConfigError.ConfigError,
  TokenEndpoint | OidcEvents | SessionStore | ClusterEvents
> => Layer.scoped(OidcLogin, Effect.flatMap(options, make))

const withLogin = <A, E, R>(
  f: (login: OidcLogin["Type"], request: HttpServerRequest.HttpServerRequest) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R | OidcLogin | HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(
    OidcLogin,
    (login) => Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => f(login, request))
  )

const renderErrors = <E extends { readonly _tag: string; readonly message: string }>(
  login: OidcLogin["Type"]
) =>
(error: E) =>
  Effect.as(
    Effect.logWarning(`Sign-in failed: ${error.message}`),
    login.errorResponse(error).pipe(HttpServerResponse.expireCookie(login.settings.loginCookie, login.cookieOptions))
  )

/**
 * The sign-in routes, to mount at `Options.path` (default `/auth`):
 *
 * - `GET /login?returnTo=/path` — starts a sign-in and redirects to the provider;
 * - `GET /callback` — the redirect URI: completes the sign-in, then redirects to `returnTo`;
 * - `POST /logout` — signs out (same-origin requests only), then RP-initiated logout at the provider;
 * - `GET /logout` — a page with a sign-out button.
 * - `POST /backchannel-logout` — the provider's back-channel logout (register
 *   `<baseUrl><path>/backchannel-logout` as the client's `backchannel_logout_uri`, with
 *   `backchannel_logout_session_required`).
 *
 * Failures answer with an error page (400 for bad input, 502 when the provider is unavailable).
 *
 * @since 0.1.0
 * @category routes
 */
export const router: HttpRouter.HttpRouter<never, OidcLogin> = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/login",
    withLogin((login, request) => {
      const query = request.url.indexOf("?") === -1 ? "" : request.url.slice(request.url.indexOf("?"))
      const returnTo = new URLSearchParams(query).get("returnTo") ?? undefined
      return login.login({ returnTo }).pipe(Effect.catchAll(renderErrors(login)))
    })
  ),
  HttpRouter.get(
    "/callback",
    withLogin((login, request) => login.callback(request).pipe(Effect.catchAll(renderErrors(login))))
  ),
  HttpRouter.post(
    "/logout",
    withLogin((login, request) =>
      login.isSameOrigin(request)
        ? login.logout(request).pipe(Effect.catchAll(renderErrors(login)))
        : Effect.succeed(HttpServerResponse.text("Cross-origin sign-out refused", { status: 403 }))
    )
  ),
  HttpRouter.get("/logout", Effect.map(OidcLogin, (login) => login.signOutPage)),
  // from the provider, not a browser: no cookie, no origin check; the logout token is the credential
  HttpRouter.post("/backchannel-logout", withLogin((login, request) => login.backchannelLogout(request)))
)

/**
 * What `requireUser` does with a request that has no session.
 *
 * @since 0.1.0
 * @category models
 */
export interface RequireUserOptions {
  /**
   * `"redirect"` (pages; the default): a GET is redirected to sign-in and back; `"unauthorized"` (APIs): 401 with a
   * JSON body `{ error, message }`.
   */
  readonly onMissing?: "redirect" | "unauthorized" | undefined
}

/** The path and query of a request URL, absolute (web handlers) or not (Node's server). */
const pathOf = (url: string): string => {
  if (url.startsWith("/")) return url
  try {
    const parsed = new URL(url)
    return parsed.pathname + parsed.search
  } catch {
    return "/"
  }
}

const unauthenticated = (
  login: OidcLogin["Type"],
  request: HttpServerRequest.HttpServerRequest,
  auth: Exclude<Authentication, { readonly _tag: "Authenticated" }> | { readonly _tag: "SignInRequired" },
  onMissing: "redirect" | "unauthorized"
): HttpServerResponse.HttpServerResponse => {
  const response = onMissing === "unauthorized"
    ? HttpServerResponse.unsafeJson({
      error: auth._tag === "Anonymous"
        ? "unauthenticated"
        : auth._tag === "SignInRequired"
        ? "sign_in_required"
        : "invalid_session",
      message: auth._tag === "Anonymous"
        ? "Sign in first."
        : auth._tag === "SignInRequired"
        ? "Sign in again: the access granted at sign-in has ended."
        : auth.reason === "expired"
        ? "The session has ended (expired or signed out); sign in again."
        : "The session cookie was refused (its signature does not verify); sign in again."
    }, {
      status: 401,
      // RFC 9110 §11.6.1: a 401 names how to authenticate
      headers: { "www-authenticate": `Cookie realm="${login.settings.origin}", login="${login.settings.loginPath}"` }
    })
    : HttpServerResponse.redirect(
      login.loginUrl(request.method === "GET" ? pathOf(request.originalUrl) : undefined),
      { status: request.method === "GET" || request.method === "HEAD" ? 302 : 303 }
    )
  const uncached = HttpServerResponse.setHeader(response, "cache-control", "no-store")
  return auth._tag === "Rejected"
    ? HttpServerResponse.expireCookie(uncached, login.settings.sessionCookie, login.cookieOptions)
    : uncached
}

/**
 * Runs an `HttpApp` (a route handler, or a whole router with `HttpRouter.use`) for the signed-in user, with
 * `CurrentUser` provided; a request without a valid session is redirected to sign-in (pages) or answered 401
 * (APIs, with `WWW-Authenticate`). A refused cookie (tampered, or its session gone) is also expired. A
 * `SignInRequired` from `app` (the user's tokens are gone) is answered the same way. A handler of `HttpRouter` and
 * `HttpLayerRouter` routes alike.
 *
 * @example
 * ```ts
 * import { CurrentUser } from "@effect-atm/core"
 * import { OidcLogin } from "@effect-atm/oidc-login"
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { Effect } from "effect"
 *
 * const me = Effect.map(CurrentUser.CurrentUser, (user) => HttpServerResponse.unsafeJson({ sub: user.subject }))
 * const routes = HttpRouter.empty.pipe(
 *   HttpRouter.get("/api/me", me.pipe(OidcLogin.requireUser({ onMissing: "unauthorized" })))
 * )
 * ```
 *
 * @since 0.1.0
 * @category middleware
 */
export const requireUser: {
  (
    options?: RequireUserOptions
  ): <E, R>(
    app: HttpApp.Default<E, R>
  ) => HttpApp.Default<
    E | SessionStoreError,
    Exclude<R, CurrentUser.CurrentUser> | OidcLogin | HttpServerRequest.HttpServerRequest
  >
  <E, R>(
    app: HttpApp.Default<E, R>,
    options?: RequireUserOptions
  ): HttpApp.Default<
    E | SessionStoreError,
    Exclude<R, CurrentUser.CurrentUser> | OidcLogin | HttpServerRequest.HttpServerRequest
  >
} = dual(
  (args) => Effect.isEffect(args[0]),
  <E, R>(app: HttpApp.Default<E, R>, options?: RequireUserOptions) =>
    withLogin((login, request) =>
      Effect.flatMap(login.authenticate(request), (auth) =>
        auth._tag === "Authenticated"
          ? CurrentUser.provide(app, auth.session.user).pipe(
            // the user's tokens are gone (refresh token rejected, none stored): sign in again, as without a session
            Effect.catchIf(
              (error): error is E => isSignInRequired(error),
              () =>
                Effect.succeed(
                  unauthenticated(login, request, { _tag: "SignInRequired" }, options?.onMissing ?? "redirect")
                )
            )
          )
          : Effect.succeed(unauthenticated(login, request, auth, options?.onMissing ?? "redirect")))
    )
)

/**
 * The signed-in user of the request, if any (for pages that show either state).
 *
 * @example
 * ```ts
 * import { OidcLogin } from "@effect-atm/oidc-login"
 * import { HttpRouter, HttpServerResponse } from "@effect/platform"
 * import { Effect, Option } from "effect"
 *
 * const home = Effect.map(OidcLogin.currentUser, (user) =>
 *   Option.match(user, {
 *     onNone: () => HttpServerResponse.html(`<a href="/auth/login?returnTo=/">Sign in</a>`),
 *     onSome: (user) => HttpServerResponse.text(`Signed in as ${user.subject}`)
 *   }))
 * const routes = HttpRouter.empty.pipe(HttpRouter.get("/", home))
 * ```
 *
 * @since 0.1.0
 * @category accessors
 */
export const currentUser: Effect.Effect<
  Option.Option<CurrentUser.User>,
  SessionStoreError,
  OidcLogin | HttpServerRequest.HttpServerRequest
> = withLogin((login, request) =>
  Effect.map(
    login.authenticate(request),
    (auth) => auth._tag === "Authenticated" ? Option.some(auth.session.user) : Option.none()
  )
)

const sizeOf = (data: string | Uint8Array): number =>
  typeof data === "string" ? Buffer.byteLength(data, "utf8") : data.byteLength

/** The socket, closing with 1009 (message too big) at the first message over `max` bytes instead of handing it on. */
const limitMessages = (
  socket: Socket.Socket,
  max: number,
  write: (chunk: Uint8Array | string | Socket.CloseEvent) => Effect.Effect<void, Socket.SocketError>
): Socket.Socket => {
  const guard =
    (handler: (data: any) => Effect.Effect<unknown, unknown, unknown> | void) => (data: string | Uint8Array): any =>
      sizeOf(data) > max
        ? Effect.ignore(write(new Socket.CloseEvent(1009, "message too big")))
        : handler(data)
  return {
    ...socket,
    run: (handler: any, options: any) => socket.run(guard(handler), options),
    runRaw: (handler: any, options: any) => socket.runRaw(guard(handler), options)
  } as Socket.Socket
}

/**
 * The websocket close code sent when the connection's session ends (sign-out, expiry).
 *
 * @since 0.1.0
 * @category constants
 */
export const sessionEndedCloseCode = 4001

/**
 * A websocket route for signed-in browsers. The upgrade request's session cookie is resolved once; without a
 * session the answer is 401 (and 403 for a foreign `Origin`, against cross-site websocket hijacking), and no
 * socket is opened. Otherwise `handler` runs for the connection's lifetime with `CurrentUser` provided — the
 * user's tokens work in it with no HTTP request at hand — and ends when the session does: the socket is closed
 * with code `sessionEndedCloseCode` at sign-out. A socket closed by the browser ends it normally.
 *
 * @example
 * ```ts
 * import { CurrentUser } from "@effect-atm/core"
 * import { OidcLogin } from "@effect-atm/oidc-login"
 * import { HttpRouter } from "@effect/platform"
 * import { Effect, Schedule } from "effect"
 *
 * const live = OidcLogin.websocket((socket) =>
 *   Effect.gen(function*() {
 *     const write = yield* socket.writer
 *     const user = yield* CurrentUser.CurrentUser
 *     yield* Effect.fork(Effect.repeat(write(`hello ${user.subject}`), Schedule.spaced("2 seconds")))
 *     yield* socket.runRaw(() => Effect.void)
 *   }).pipe(Effect.scoped)
 * )
 * const routes = HttpRouter.empty.pipe(HttpRouter.get("/ws", live))
 * ```
 *
 * @since 0.1.0
 * @category websocket
 */
export const websocket = <E, R>(
  handler: (socket: Socket.Socket) => Effect.Effect<void, E, R>
): HttpApp.Default<
  Exclude<E, Socket.SocketError> | SessionStoreError,
  Exclude<R, CurrentUser.CurrentUser> | OidcLogin | HttpServerRequest.HttpServerRequest
> =>
  withLogin((login, request) =>
    Effect.gen(function*() {
      if (request.headers["upgrade"]?.toLowerCase() !== "websocket") {
        return HttpServerResponse.text("Expected a websocket upgrade", {
          status: 426,
          headers: { upgrade: "websocket" }
        })
      }
      const auth = yield* login.authenticate(request)
      if (auth._tag !== "Authenticated") return unauthenticated(login, request, auth, "unauthorized")
      if (!login.isSameOrigin(request)) {
        return HttpServerResponse.text("Cross-origin websocket refused", { status: 403 })
      }
      const { maxConnectionsPerSession, maxMessageBytes } = login.settings
      if ((yield* login.connectionsOf(auth.session.id)) >= maxConnectionsPerSession) {
        return HttpServerResponse.text(`At most ${maxConnectionsPerSession} connections per session`, { status: 429 })
      }
      const raw = yield* Effect.orDie(request.upgrade)
      yield* Effect.scoped(Effect.gen(function*() {
        const write = yield* raw.writer
        const socket = limitMessages(raw, maxMessageBytes, write)
        yield* login.runConnection(auth.session, handler(socket), {
          onEnd: Effect.ignore(write(new Socket.CloseEvent(sessionEndedCloseCode, "session ended")))
        })
      })).pipe(
        Effect.catchAll((error) =>
          Socket.isSocketError(error) ? Effect.void : Effect.fail(error as Exclude<E, Socket.SocketError>)
        )
      )
      return HttpServerResponse.empty()
    })
  )
