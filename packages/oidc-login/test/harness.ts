/**
 * A real server for the login tests: the embedded OpenID Provider and demo API, an HTTP server on a random
 * loopback port with the login routes, a few protected routes and a websocket, and counting wrappers around the
 * stores (to assert what was — and was not — stored or looked up). The browser is a `fetch` with a cookie jar.
 */
import * as AccessTokenHttpClient from "@effect-atm/core/AccessTokenHttpClient"
import * as AccessTokenManagement from "@effect-atm/core/AccessTokenManagement"
import * as AccessTokenStore from "@effect-atm/core/AccessTokenStore"
import * as ClusterEvents from "@effect-atm/core/ClusterEvents"
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import * as SessionStore from "@effect-atm/core/SessionStore"
import * as TokenLock from "@effect-atm/core/TokenLock"
import * as UserTokenStore from "@effect-atm/core/UserTokenStore"
import * as DemoApi from "@effect-atm/dev-identity/DemoApi"
import * as IdentityProvider from "@effect-atm/dev-identity/IdentityProvider"
import * as OidcLogin from "@effect-atm/oidc-login/OidcLogin"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { createServer } from "node:http"

export class DemoApiClient
  extends Context.Tag("test/DemoApiClient")<DemoApiClient, AccessTokenHttpClient.UserHttpClient>()
{}

/** Counts calls to a store's methods. */
export interface Calls {
  readonly counts: Record<string, number>
}

const counting = <S extends Record<string, unknown>>(service: S, calls: Calls): S =>
  Object.fromEntries(
    Object.entries(service).map(([name, f]) => [
      name,
      typeof f === "function"
        ? (...args: Array<unknown>) => {
          calls.counts[name] = (calls.counts[name] ?? 0) + 1
          return (f as (...args: Array<unknown>) => unknown)(...args)
        }
        : f
    ])
  ) as S

/** The session secret of every harness: tests open and reseal pre-login cookies with it. */
export const secret = "test-session-secret-0123456789-abcdef"

export interface HarnessOptions {
  readonly accessTokenTtl?: number
  /** Wraps the application's HttpClient (the one the token endpoint, and so the login, speaks to the provider with). */
  readonly transport?: (client: HttpClient.HttpClient) => HttpClient.HttpClient
  readonly login?: Partial<OidcLogin.Options>
  /** Sign in with the provider's `web-dpop` client, with `dpop: true`: DPoP-bound user tokens. */
  readonly dpop?: boolean
  /** Wraps the session store the login uses (e.g. to make some of its calls fail). */
  readonly sessions?: (store: SessionStore.SessionStore["Type"]) => SessionStore.SessionStore["Type"]
}

export interface Harness {
  readonly url: string
  readonly provider: IdentityProvider.IdentityProvider["Type"]
  readonly demoApi: DemoApi.DemoApi["Type"]
  readonly login: OidcLogin.OidcLogin["Type"]
  readonly sessions: SessionStore.SessionStore["Type"]
  readonly tokens: UserTokenStore.UserTokenStore["Type"]
  readonly sessionCalls: Calls
  readonly tokenCalls: Calls
}

const routes = HttpRouter.empty.pipe(
  HttpRouter.mount("/auth", OidcLogin.router),
  HttpRouter.get(
    "/page",
    Effect.map(CurrentUser.CurrentUser, (user) => HttpServerResponse.text(`hello ${user.subject}`)).pipe(
      OidcLogin.requireUser()
    )
  ),
  HttpRouter.get(
    "/api/me",
    Effect.map(
      CurrentUser.CurrentUser,
      (user) => HttpServerResponse.unsafeJson({ sub: user.subject, sessionId: user.sessionId, claims: user.claims })
    ).pipe(OidcLogin.requireUser({ onMissing: "unauthorized" }))
  ),
  HttpRouter.get(
    "/api/demo",
    Effect.gen(function*() {
      const client = yield* DemoApiClient
      const response = yield* client.get("/things")
      return HttpServerResponse.unsafeJson({ status: response.status, body: yield* response.json })
    }).pipe(Effect.orDie, OidcLogin.requireUser({ onMissing: "unauthorized" }))
  ),
  HttpRouter.get(
    "/ws",
    OidcLogin.websocket((socket) =>
      Effect.gen(function*() {
        const write = yield* socket.writer
        const user = yield* CurrentUser.CurrentUser
        yield* Effect.forkScoped(
          Effect.repeat(write(JSON.stringify({ sub: user.subject })), Schedule.spaced("100 millis"))
        )
        yield* socket.runRaw(() => Effect.void)
      }).pipe(Effect.scoped)
    )
  )
)

/** Starts everything in the scope. */
export const make = (options: HarnessOptions = {}): Effect.Effect<Harness, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const sessionCalls: Calls = { counts: {} }
    const tokenCalls: Calls = { counts: {} }
    const counted = counting(SessionStore.makeMemory(), sessionCalls)
    const sessions = options.sessions?.(counted) ?? counted
    const tokens = counting(UserTokenStore.makeMemory(), tokenCalls)

    const dev = yield* Layer.build(
      DemoApi.layer().pipe(
        Layer.provideMerge(IdentityProvider.layer({ accessTokenTtl: options.accessTokenTtl ?? 300 }))
      )
    )
    const provider = Context.get(dev, IdentityProvider.IdentityProvider)
    const demoApi = Context.get(dev, DemoApi.DemoApi)
    const server = yield* Layer.build(NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1" }))
    const address = Context.get(server, HttpServer.HttpServer).address as HttpServer.TcpAddress
    const url = `http://127.0.0.1:${address.port}`

    const registered = options.dpop ? IdentityProvider.Clients.webDpop : IdentityProvider.Clients.web
    const client = {
      issuer: provider.issuer,
      clientId: registered.clientId,
      clientSecret: Redacted.make(registered.clientSecret),
      ...(options.dpop ? { dpop: true } : {})
    }
    const transport = options.transport
    const httpLayer = transport === undefined
      ? FetchHttpClient.layer
      : Layer.effect(HttpClient.HttpClient, Effect.map(HttpClient.HttpClient, transport)).pipe(
        Layer.provide(FetchHttpClient.layer)
      )
    const tokenLayer = AccessTokenManagement.layerServer({ client, resource: IdentityProvider.Resources.demoApi })
      .pipe(Layer.provide([
        Layer.succeed(UserTokenStore.UserTokenStore, tokens),
        AccessTokenStore.layerMemory(),
        TokenLock.layerMemory,
        httpLayer
      ]))
    const loginLayer = OidcLogin.layer({
      client,
      baseUrl: url,
      resource: IdentityProvider.Resources.demoApi,
      scope: "openid profile email offline_access api.read",
      ...options.login,
      session: { secret: Redacted.make(secret), ...options.login?.session }
    }).pipe(Layer.provide([Layer.succeed(SessionStore.SessionStore, sessions), ClusterEvents.layerMemory]))
    const apiLayer = AccessTokenHttpClient.layerUser(DemoApiClient, { baseUrl: demoApi.url }).pipe(
      Layer.provide(FetchHttpClient.layer)
    )
    const app = yield* Layer.build(
      Layer.provideMerge(Layer.merge(loginLayer, apiLayer), tokenLayer)
    )
    yield* HttpServer.serveEffect(routes).pipe(Effect.provide(Context.merge(app, server)))
    return {
      url,
      provider,
      demoApi,
      login: Context.get(app, OidcLogin.OidcLogin),
      sessions,
      tokens,
      sessionCalls,
      tokenCalls
    }
  })

/** A browser for one site: remembers cookies, follows no redirects. */
export class Browser {
  readonly cookies = new Map<string, string>()
  constructor(readonly base: string) {}

  get cookieHeader(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ")
  }

  fetch(path: string, init: RequestInit = {}): Effect.Effect<Response> {
    return Effect.promise(async () => {
      const headers = new Headers(init.headers)
      if (this.cookies.size > 0) headers.set("cookie", this.cookieHeader)
      const response = await fetch(new URL(path, this.base), { ...init, headers, redirect: "manual" })
      for (const header of response.headers.getSetCookie()) {
        const [pair = ""] = header.split(";")
        const eq = pair.indexOf("=")
        const name = pair.slice(0, eq)
        const value = pair.slice(eq + 1)
        if (value === "" || /max-age=0|expires=Thu, 01 Jan 1970/i.test(header)) this.cookies.delete(name)
        else this.cookies.set(name, value)
      }
      return response
    })
  }
}

export interface SignIn {
  readonly browser: Browser
  /** The callback URL the provider sent the browser to (with code and state). */
  readonly callbackUrl: URL
  readonly response: Response
}

/** Starts a sign-in at the app: returns the authorization URL (the browser got the pre-login cookie). */
export const startSignIn = (_harness: Harness, browser: Browser, returnTo?: string) =>
  Effect.gen(function*() {
    const start = yield* browser.fetch(
      returnTo === undefined ? "/auth/login" : `/auth/login?returnTo=${encodeURIComponent(returnTo)}`
    )
    if (start.status !== 302) throw new Error(`login answered ${start.status}`)
    return new URL(start.headers.get("location")!)
  })

/** The whole sign-in of `account`, as a browser would do it (the provider's login form is filled by `authorize`). */
export const signIn = (harness: Harness, account: string, options?: { browser?: Browser; returnTo?: string }) =>
  Effect.gen(function*() {
    const browser = options?.browser ?? new Browser(harness.url)
    const authorizationUrl = yield* startSignIn(harness, browser, options?.returnTo)
    const callbackUrl = yield* harness.provider.authorize(authorizationUrl, account)
    const response = yield* browser.fetch(callbackUrl.pathname + callbackUrl.search)
    return { browser, callbackUrl, response } satisfies SignIn
  })

export const json = (response: Response) => Effect.promise(() => response.json() as Promise<any>)
export const text = (response: Response) => Effect.promise(() => response.text())

/** The session id inside a signed session cookie value. */
export const sessionIdOf = (cookie: string): string => cookie.slice(0, cookie.indexOf("."))

export const storedToken = (harness: Harness, subject: string, sessionId: string) =>
  harness.tokens.get(CurrentUser.storeKey(new CurrentUser.User({ subject, sessionId })), {
    resource: "urn:effect-atm:demo-api"
  }).pipe(
    Effect.map(Option.getOrUndefined)
  )
