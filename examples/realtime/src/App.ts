/**
 * The realtime example: a server-driven page whose data reaches the browser over a websocket, fetched from a
 * protected API with the signed-in user's access token — on the server, with no HTTP request at hand. The
 * counterpart of Duende's Blazor Server sample.
 *
 * The steps of the seed, and where they are here:
 *
 * 1. Store registration — `TokenStoreLive` + `TokensLive`: the user token store (in memory, observed by
 *    `TokenActivity`) under `AccessTokenManagement.layerServer` (.NET: `AddOpenIdConnectAccessTokenManagement()`
 *    `.AddBlazorServerAccessTokenManagement<ServerSideTokenStore>()`).
 * 2. TokenValidated — `LoginLive`: `OidcLogin` signs the user in and calls `OidcEvents.tokenValidated`, which puts
 *    the tokens into the store under the user's session (.NET: the OpenID Connect handler's `OnTokenValidated`).
 * 3. Named client — `DemoApiClientLive`: `AccessTokenHttpClient.layerUser(DemoApiClient, …)`, an `HttpClient`
 *    that attaches the current user's token and refreshes it (.NET: `AddUserAccessTokenHttpClient("demoApiClient")`).
 * 4. The component — `live`: a websocket handler that runs with `CurrentUser` provided for the connection's
 *    lifetime, calls the API through `DemoApiClient` every couple of seconds and pushes the answers.
 *
 * Steps 2 and 3 and the token management of step 1 are `layerServices`, over whatever stores the context holds:
 * `layer` puts memory ones under it for one process, `Cluster.instance` Redis ones for each of two instances.
 */
import * as AccessTokenHttpClient from "@effect-atm/core/AccessTokenHttpClient"
import * as AccessTokenManagement from "@effect-atm/core/AccessTokenManagement"
import * as AccessTokenStore from "@effect-atm/core/AccessTokenStore"
import * as ClusterEvents from "@effect-atm/core/ClusterEvents"
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import * as TokenClient from "@effect-atm/core/TokenClient"
import type { DiscoveryFailed, InvalidClientConfiguration } from "@effect-atm/core/TokenError"
import * as TokenLock from "@effect-atm/core/TokenLock"
import * as UserTokenStore from "@effect-atm/core/UserTokenStore"
import * as DemoApi from "@effect-atm/dev-identity/DemoApi"
import * as IdentityProvider from "@effect-atm/dev-identity/IdentityProvider"
import type { InvalidLoginConfiguration } from "@effect-atm/oidc-login/LoginError"
import * as OidcLogin from "@effect-atm/oidc-login/OidcLogin"
import * as SessionStore from "@effect-atm/oidc-login/SessionStore"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Socket from "@effect/platform/Socket"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { createServer } from "node:http"
import * as Page from "./Page.js"
import { layerObserved, TokenActivity } from "./TokenActivity.js"

/**
 * The named user-token client for the demo API (the seed's `demoApiClient`): its service *is* an `HttpClient`.
 */
export class DemoApiClient
  extends Context.Tag("example-realtime/DemoApiClient")<DemoApiClient, AccessTokenHttpClient.UserHttpClient>()
{}

export interface Options {
  /** Port on 127.0.0.1; 0 picks a free one. Default: 0. */
  readonly port?: number | undefined
  /** Access token lifetime at the embedded provider, in seconds. Default: 20. */
  readonly accessTokenTtl?: number | undefined
  /** Refresh token lifetime at the embedded provider, in seconds. Default: 3600. */
  readonly refreshTokenTtl?: number | undefined
  /** How often each connection calls the API and pushes the answer. Default: 2 seconds. */
  readonly interval?: Duration.DurationInput | undefined
  /**
   * DPoP-bound user tokens: the provider's `web-dpop` client with `dpop: true` — a proof key per session, proofs
   * on the code exchange, on refresh and on every API call. Default: false (bearer tokens).
   */
  readonly dpop?: boolean | undefined
  /**
   * Client authentication with a signed assertion instead of a secret: the provider's `web-private-key-jwt` client
   * with `authentication: "private_key_jwt"` and the key the provider made at start-up. Combines with `dpop`.
   * Default: false (`client_secret_basic`).
   */
  readonly privateKeyJwt?: boolean | undefined
  /**
   * Websocket limits: the largest message a browser may send (default 64 KiB; larger closes the connection with
   * 1009) and the connections one session may hold (default 10; more are refused with 429).
   */
  readonly websocket?: OidcLogin.WebsocketOptions | undefined
}

/** `PUSH_INTERVAL`: how often each websocket gets the API's answer (a duration, default 2 seconds). */
export const pushInterval: Config.Config<Duration.Duration> = Config.duration("PUSH_INTERVAL").pipe(
  Config.withDefault(Duration.seconds(2))
)

/**
 * The options `main.ts` reads from the environment (Effect `Config`): `ACCESS_TOKEN_TTL` (seconds, default 20),
 * `PUSH_INTERVAL` (see `pushInterval`), `DPOP` and `PRIVATE_KEY_JWT` (`true` or `false`, default false), `WS_MAX_MESSAGE_BYTES` (default 65536) and
 * `WS_MAX_CONNECTIONS_PER_SESSION` (default 10). The port is `main.ts`'s own (`PORT`).
 */
export const config: Config.Config<Options> = Config.all({
  accessTokenTtl: Config.integer("ACCESS_TOKEN_TTL").pipe(Config.withDefault(20)),
  interval: pushInterval,
  dpop: Config.boolean("DPOP").pipe(Config.withDefault(false)),
  privateKeyJwt: Config.boolean("PRIVATE_KEY_JWT").pipe(Config.withDefault(false)),
  websocket: Config.all({
    maxMessageBytes: Config.integer("WS_MAX_MESSAGE_BYTES").pipe(Config.withDefault(65_536)),
    maxConnectionsPerSession: Config.integer("WS_MAX_CONNECTIONS_PER_SESSION").pipe(Config.withDefault(10))
  })
})

/** What a running app exposes, for `main.ts` and for tests. */
export class RealtimeApp extends Context.Tag("example-realtime/RealtimeApp")<RealtimeApp, {
  readonly url: string
  readonly provider: IdentityProvider.IdentityProvider["Type"]
  readonly demoApi: DemoApi.DemoApi["Type"]
  readonly login: OidcLogin.OidcLogin["Type"]
  readonly tokenStore: UserTokenStore.UserTokenStore["Type"]
  readonly sessionStore: SessionStore.SessionStore["Type"]
}>() {}

/** The answer of the demo API: what it saw in the access token. */
class ApiEcho extends Schema.Class<ApiEcho>("ApiEcho")({
  sub: Schema.String,
  client_id: Schema.String,
  scope: Schema.String,
  aud: Schema.Union(Schema.String, Schema.Array(Schema.String)),
  jti: Schema.String,
  exp: Schema.Number,
  path: Schema.String,
  /** with DPoP: the thumbprint of the session's proof key, which the API checked the call's proof against */
  cnf: Schema.optional(Schema.Struct({ jkt: Schema.optional(Schema.String) }))
}) {}

/** What the server pushes to the page. */
type Message =
  | {
    readonly type: "update"
    readonly at: number
    /** With several instances: the one this connection runs on. */
    readonly instance?: string | undefined
    readonly api: ApiEcho
    readonly token: {
      readonly signedInAt: number
      readonly refreshes: number
      readonly lastRefreshedAt: number | undefined
      readonly accessTokenExpiresAt: number | undefined
    }
  }
  | { readonly type: "error"; readonly message: string }
  | { readonly type: "signed-out"; readonly message: string }

/** 4. The component: one per websocket connection, acting for the connection's user. */
const live = (interval: Duration.Duration, instance?: string) =>
  OidcLogin.websocket((socket) =>
    Effect.gen(function*() {
      const write = yield* socket.writer
      const send = (message: Message) => write(JSON.stringify(message))
      const user = yield* CurrentUser.CurrentUser
      const api = yield* DemoApiClient
      const activity = yield* TokenActivity

      // no HTTP request here: the client finds the user in the fiber's context, and their token in the store
      const update = Effect.gen(function*() {
        const response = yield* api.get("/inventory")
        const echo = yield* Effect.flatMap(response.json, Schema.decodeUnknown(ApiEcho))
        const tokens = yield* activity.of(user)
        yield* send({
          type: "update",
          at: yield* Clock.currentTimeMillis,
          ...(instance === undefined ? {} : { instance }),
          api: echo,
          token: {
            signedInAt: tokens?.signedInAt ?? 0,
            refreshes: tokens?.refreshes ?? 0,
            lastRefreshedAt: tokens?.lastRefreshedAt,
            accessTokenExpiresAt: tokens?.accessTokenExpiresAt
          }
        })
      })

      const loop = Effect.gen(function*() {
        while (true) {
          const result = yield* Effect.either(update)
          if (Either.isLeft(result)) {
            const error = result.left
            if (error._tag === "SignInRequired") {
              yield* send({ type: "signed-out", message: error.message })
              return yield* write(new Socket.CloseEvent(OidcLogin.sessionEndedCloseCode, "sign in again"))
            }
            yield* send({ type: "error", message: `The demo API could not be reached: ${error.message}` })
          }
          yield* Effect.sleep(interval)
        }
      })

      yield* Effect.forkScoped(loop)
      // the page sends nothing; this keeps the connection until the browser (or the session) ends it
      yield* socket.runRaw(() => Effect.void)
    }).pipe(Effect.scoped)
  )

/** `apiUrl`: the demo API's address, shown on the page; `instance`: the name of this instance, with several. */
export const routes = (interval: Duration.Duration, apiUrl: string, instance?: string) =>
  HttpRouter.empty.pipe(
    HttpRouter.mount("/auth", OidcLogin.router),
    HttpRouter.get(
      "/",
      Effect.gen(function*() {
        const login = yield* OidcLogin.OidcLogin
        const user = yield* OidcLogin.currentUser
        const html = Option.match(user, {
          onNone: () => Page.signedOut({ loginUrl: login.loginUrl("/") }),
          onSome: (user) =>
            Page.signedIn({
              subject: user.subject,
              name: typeof user.claims?.name === "string" ? user.claims.name : user.subject,
              email: typeof user.claims?.email === "string" ? user.claims.email : undefined,
              logoutUrl: login.settings.logoutPath,
              apiUrl,
              intervalSeconds: Duration.toSeconds(interval),
              instance
            })
        })
        return HttpServerResponse.html(html).pipe(HttpServerResponse.setHeader("cache-control", "no-store"))
      })
    ),
    HttpRouter.get(
      "/api/me",
      Effect.map(CurrentUser.CurrentUser, (user) => HttpServerResponse.unsafeJson({ subject: user.subject })).pipe(
        OidcLogin.requireUser({ onMissing: "unauthorized" })
      )
    ),
    HttpRouter.get("/ws", live(interval, instance)),
    HttpRouter.get("/favicon.ico", Effect.succeed(HttpServerResponse.empty({ status: 204 }))),
    HttpRouter.get("/app.css", Effect.succeed(HttpServerResponse.text(Page.css, { contentType: "text/css" }))),
    HttpRouter.get(
      "/app.js",
      Effect.succeed(HttpServerResponse.text(Page.script, { contentType: "text/javascript" }))
    )
  )

/**
 * Tight defaults for a page that shows only what the server renders and what its own websocket brings. The
 * sign-in pages bring their own policy (for their inline stylesheet), which is kept.
 */
export const securityHeaders = (issuer: string) => <E, R>(app: HttpRouter.HttpRouter<E, R>) =>
  HttpRouter.use(app, (handler) =>
    Effect.map(handler, (response) =>
      HttpServerResponse.setHeaders(response, {
        "content-security-policy": response.headers["content-security-policy"] ??
          `default-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; ` +
            `form-action 'self' ${issuer}`,
        "x-content-type-options": "nosniff",
        // not "no-referrer": browsers then send `Origin: null` on form posts, which the sign-out refuses
        "referrer-policy": "same-origin"
      })))

/**
 * The client of the embedded provider that the app signs in with, as `DPOP` and `PRIVATE_KEY_JWT` choose it: `web`
 * (client secret), `web-dpop` (client secret, DPoP-bound tokens) or, given `privateKey` (the provider's
 * `clientPrivateKeys.pem`), `web-private-key-jwt` (a signed client assertion, with DPoP or without). Plain data, so
 * that an instance in a process of its own builds the same client. With your own provider: `TokenClient.config`.
 */
export const registeredClient = (
  issuer: string,
  options: {
    readonly dpop?: boolean | undefined
    readonly privateKey?: Redacted.Redacted<string> | undefined
  }
): TokenClient.TokenClientInput => {
  const dpop = options.dpop ?? false
  if (options.privateKey !== undefined) {
    return {
      issuer,
      clientId: IdentityProvider.Clients.webPrivateKeyJwt.clientId,
      authentication: "private_key_jwt",
      privateKey: options.privateKey,
      dpop
    }
  }
  const registered = dpop ? IdentityProvider.Clients.webDpop : IdentityProvider.Clients.web
  return { issuer, clientId: registered.clientId, clientSecret: Redacted.make(registered.clientSecret), dpop }
}

/** What `layerServices` wires: the instance's client and addresses. */
export interface ServicesOptions {
  /** The client registered at the provider (`registeredClient`), decoded once for the sign-in and the managers. */
  readonly client: TokenClient.TokenClientInput
  /** Where the browser reaches the app (with several instances, the proxy): cookies and redirects. */
  readonly baseUrl: string
  readonly demoApiUrl: string
  /** Signs the session cookies; instances that share sessions share it. Default: a fresh one per process. */
  readonly sessionSecret?: Redacted.Redacted<string> | undefined
  readonly websocket?: OidcLogin.WebsocketOptions | undefined
  /** How long a request to the token endpoint may take. Default: `TokenEndpoint`'s (10 seconds). */
  readonly tokenRequestTimeout?: Duration.Duration | undefined
}

/**
 * Steps 1 to 3 over the stores, the lock and the bus in the context: token management, the sign-in and the named
 * client. `layer` runs it over memory ones for one process; `Cluster.instance` over Redis for each instance.
 */
export const layerServices = (
  options: ServicesOptions
): Layer.Layer<
  AccessTokenManagement.ServerServices | OidcLogin.OidcLogin | DemoApiClient,
  InvalidClientConfiguration | DiscoveryFailed | InvalidLoginConfiguration,
  AccessTokenManagement.Stores | SessionStore.SessionStore | ClusterEvents.ClusterEvents
> =>
  Layer.unwrapEffect(Effect.map(TokenClient.decode(options.client), (client) => {
    // 1. Store registration: token management over the user token store in the context
    const TokensLive = AccessTokenManagement.layerServer({
      client,
      resource: IdentityProvider.Resources.demoApi,
      ...(options.tokenRequestTimeout === undefined ? {} : { endpoint: { timeout: options.tokenRequestTimeout } })
    }).pipe(
      // the token endpoint speaks to the provider through the application's HttpClient
      Layer.provide(FetchHttpClient.layer)
    )

    // 2. TokenValidated: the sign-in, which seeds the store for the user's session (with DPoP, with its proof key)
    const LoginLive = OidcLogin.layer({
      client,
      baseUrl: options.baseUrl,
      scope: "openid profile email offline_access api.read",
      resource: IdentityProvider.Resources.demoApi,
      websocket: options.websocket,
      ...(options.sessionSecret === undefined ? {} : { session: { secret: options.sessionSecret } })
    })

    // 3. The named client
    const DemoApiClientLive = AccessTokenHttpClient.layerUser(DemoApiClient, { baseUrl: options.demoApiUrl }).pipe(
      Layer.provide(FetchHttpClient.layer)
    )

    return Layer.merge(LoginLive, DemoApiClientLive).pipe(Layer.provideMerge(TokensLive))
  }))

/**
 * The whole app as a layer: the embedded provider and demo API, the HTTP server on 127.0.0.1, and the token
 * management and sign-in wiring (`layerServices`) over in-memory stores. Provides `RealtimeApp` with the URL and
 * handles.
 */
export const layer = (
  options: Options = {}
): Layer.Layer<RealtimeApp, ServeError | InvalidClientConfiguration | DiscoveryFailed | InvalidLoginConfiguration> => {
  const interval = Duration.decode(options.interval ?? Duration.seconds(2))

  const DevIdentityLive = DemoApi.layer().pipe(Layer.provideMerge(IdentityProvider.layer({
    accessTokenTtl: options.accessTokenTtl ?? 20,
    refreshTokenTtl: options.refreshTokenTtl ?? 3600
  })))

  const ServerLive = NodeHttpServer.layer(() => createServer(), { port: options.port ?? 0, host: "127.0.0.1" })

  // 1. Store registration: the user token store (token management over it is in `layerServices`)
  // tokens live no longer than the longest session (OidcLogin's absolute timeout, 12 hours by default)
  const TokenStoreLive = layerObserved(UserTokenStore.layerMemory({ timeToLive: "12 hours" }))

  // 1.–3. on this server's address, with the provider's client for these options
  const WiringLive = Layer.unwrapEffect(Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const provider = yield* IdentityProvider.IdentityProvider
    const api = yield* DemoApi.DemoApi
    return layerServices({
      client: registeredClient(provider.issuer, {
        dpop: options.dpop,
        privateKey: options.privateKeyJwt ? Redacted.make(provider.clientPrivateKeys.pem) : undefined
      }),
      baseUrl: `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`,
      demoApiUrl: api.url,
      websocket: options.websocket
    })
  }))

  const HttpLive = Layer.unwrapEffect(
    Effect.gen(function*() {
      const provider = yield* IdentityProvider.IdentityProvider
      const api = yield* DemoApi.DemoApi
      return HttpServer.serve(routes(interval, api.url).pipe(securityHeaders(provider.issuer)))
    })
  )

  const Handles = Layer.effect(
    RealtimeApp,
    Effect.gen(function*() {
      const server = yield* HttpServer.HttpServer
      return {
        url: `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`,
        provider: yield* IdentityProvider.IdentityProvider,
        demoApi: yield* DemoApi.DemoApi,
        login: yield* OidcLogin.OidcLogin,
        tokenStore: yield* UserTokenStore.UserTokenStore,
        sessionStore: yield* SessionStore.SessionStore
      }
    })
  )

  // one process: tokens and sessions in memory, renewals exclusive within the process, and the sessions' end told
  // to this process only
  const StoresLive = Layer.mergeAll(
    TokenStoreLive,
    AccessTokenStore.layerMemory(),
    TokenLock.layerMemory,
    SessionStore.layerMemory(),
    ClusterEvents.layerMemory
  )
  const ServicesLive = WiringLive.pipe(Layer.provideMerge(StoresLive))
  return Layer.merge(Handles, HttpLive).pipe(
    Layer.provide(ServicesLive),
    Layer.provide(Layer.merge(DevIdentityLive, ServerLive))
  )
}
