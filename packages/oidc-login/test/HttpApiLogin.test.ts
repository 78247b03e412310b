import * as CurrentUser from "@effect-atm/core/CurrentUser"
import * as TokenError from "@effect-atm/core/TokenError"
import * as HttpApiLogin from "@effect-atm/oidc-login/HttpApiLogin"
import * as OidcLogin from "@effect-atm/oidc-login/OidcLogin"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Harness from "./harness.js"

const Me = Schema.Struct({ subject: Schema.String, sessionId: Schema.String })

class Account extends HttpApiGroup.make("account")
  .add(HttpApiEndpoint.get("me", "/me").addSuccess(Me))
  .add(HttpApiEndpoint.get("downstreamDown", "/down").addSuccess(Me))
  .add(HttpApiEndpoint.get("tokensGone", "/gone").addSuccess(Me))
  .addError(HttpApiLogin.TemporarilyUnavailable)
  .addError(HttpApiLogin.InternalError)
  .middleware(HttpApiLogin.Authentication)
{}
class Api extends HttpApi.make("api").add(Account) {}

const AccountLive = HttpApiBuilder.group(Api, "account", (handlers) =>
  handlers
    .handle("me", () =>
      Effect.map(CurrentUser.CurrentUser, (user) => ({ subject: user.subject, sessionId: user.sessionId ?? "" })))
    .handle("downstreamDown", () =>
      Effect.fail(
        new TokenError.TokenEndpointUnavailable({
          operation: "refresh_token",
          clientId: "secret-client-id",
          endpoint: "https://idp.internal.example/token",
          reason: "connect ECONNREFUSED 10.0.0.7:443"
        })
      ).pipe(HttpApiLogin.publicErrors))
    .handle("tokensGone", () =>
      Effect.flatMap(CurrentUser.CurrentUser, (user) =>
        Effect.fail(new TokenError.SignInRequired({ subject: user.subject, reason: "refresh-token-rejected" }))).pipe(
          HttpApiLogin.publicErrors
        )))

/** The API as a web handler, over the harness's login. */
const apiHandler = (harness: Harness.Harness) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      HttpApiBuilder.toWebHandler(
        Layer.mergeAll(
          HttpApiBuilder.api(Api).pipe(
            Layer.provide(AccountLive),
            Layer.provide(HttpApiLogin.layerAuthentication),
            Layer.provide(Layer.succeed(OidcLogin.OidcLogin, harness.login))
          ),
          Layer.succeed(OidcLogin.OidcLogin, harness.login),
          HttpServer.layerContext
        ),
        { middleware: HttpApiLogin.wwwAuthenticate as never }
      )
    ),
    (web) => Effect.promise(() => web.dispose())
  )

const call = (handler: (request: Request) => Promise<Response>, path: string, cookie?: string | undefined) =>
  Effect.promise(async () => {
    const response = await handler(
      new Request(`http://127.0.0.1${path}`, cookie === undefined ? {} : { headers: { cookie } })
    )
    return { status: response.status, headers: response.headers, body: await response.text() }
  })

describe("HttpApiLogin", () => {
  it.scopedLive("a handler gets CurrentUser from the session cookie", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const { browser } = yield* Harness.signIn(harness, "alice")
      const web = yield* apiHandler(harness)
      const me = yield* call(web.handler, "/me", browser.cookieHeader)
      assert.strictEqual(me.status, 200)
      const body = JSON.parse(me.body)
      assert.strictEqual(body.subject, "alice")
      assert.isNotEmpty(body.sessionId)
    }))

  it.scopedLive("no session, or a refused one: 401 with the safe body and WWW-Authenticate", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const web = yield* apiHandler(harness)
      const anonymous = yield* call(web.handler, "/me")
      assert.strictEqual(anonymous.status, 401)
      assert.deepStrictEqual(JSON.parse(anonymous.body), {
        _tag: "Unauthenticated",
        error: "unauthenticated",
        message: "Sign in first."
      })
      assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Cookie realm="http:\/\/127\.0\.0\.1:\d+"/)

      const forged = yield* call(web.handler, "/me", `atm_session=${"a".repeat(43)}.${"b".repeat(43)}`)
      assert.strictEqual(forged.status, 401)
      assert.strictEqual(JSON.parse(forged.body).error, "invalid_session")
    }))

  it.scopedLive("the library's errors reach the caller as a status and a short message, details only in logs", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const { browser } = yield* Harness.signIn(harness, "alice")
      const web = yield* apiHandler(harness)
      const down = yield* call(web.handler, "/down", browser.cookieHeader)
      assert.strictEqual(down.status, 503)
      assert.strictEqual(JSON.parse(down.body)._tag, "TemporarilyUnavailable")
      for (const detail of ["secret-client-id", "idp.internal.example", "10.0.0.7", "ECONNREFUSED"]) {
        assert.notInclude(down.body, detail)
      }
      const gone = yield* call(web.handler, "/gone", browser.cookieHeader)
      assert.strictEqual(gone.status, 401)
      assert.strictEqual(JSON.parse(gone.body).error, "sign_in_required")
      assert.notInclude(gone.body, "alice")
    }))

  it.scopedLive("HttpLayerRouter: a page redirects to sign-in, an API answers 401, SignInRequired does the same", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const { browser } = yield* Harness.signIn(harness, "alice")
      const hello = Effect.map(CurrentUser.CurrentUser, (user) => HttpServerResponse.text(`hello ${user.subject}`))
      const gone = Effect.flatMap(
        CurrentUser.CurrentUser,
        (user) => Effect.fail(new TokenError.SignInRequired({ subject: user.subject, reason: "no-tokens" }))
      )
      const routes = HttpLayerRouter.addAll([
        HttpLayerRouter.route("GET", "/page", hello.pipe(OidcLogin.requireUser())),
        HttpLayerRouter.route("GET", "/api/me", hello.pipe(OidcLogin.requireUser({ onMissing: "unauthorized" }))),
        HttpLayerRouter.route("GET", "/gone-page", gone.pipe(OidcLogin.requireUser())),
        HttpLayerRouter.route("GET", "/gone-api", gone.pipe(OidcLogin.requireUser({ onMissing: "unauthorized" })))
      ])
      const web = yield* Effect.acquireRelease(
        Effect.sync(() => HttpLayerRouter.toWebHandler(routes, { disableLogger: true })),
        (web) => Effect.promise(() => web.dispose())
      )
      // the login is a requirement of the routes, provided per request
      const context = Context.make(OidcLogin.OidcLogin, harness.login)
      const handler = (request: Request) => web.handler(request, context)
      const page = yield* call(handler, "/page")
      assert.strictEqual(page.status, 302)
      assert.strictEqual(page.headers.get("location"), "/auth/login?returnTo=%2Fpage")
      const api = yield* call(handler, "/api/me")
      assert.strictEqual(api.status, 401)
      assert.isNotNull(api.headers.get("www-authenticate"))
      assert.strictEqual(JSON.parse(api.body).error, "unauthenticated")

      const signedInPage = yield* call(handler, "/page", browser.cookieHeader)
      assert.strictEqual(signedInPage.status, 200)
      assert.strictEqual(signedInPage.body, "hello alice")
      const gonePage = yield* call(handler, "/gone-page", browser.cookieHeader)
      assert.strictEqual(gonePage.status, 302, "SignInRequired on a page: back to sign-in")
      assert.strictEqual(gonePage.headers.get("location"), "/auth/login?returnTo=%2Fgone-page")
      const goneApi = yield* call(handler, "/gone-api", browser.cookieHeader)
      assert.strictEqual(goneApi.status, 401)
      assert.strictEqual(JSON.parse(goneApi.body).error, "sign_in_required")
    }))

  it.scopedLive("HttpLayerRouter: the HttpApi with Authentication, and WWW-Authenticate from a router middleware", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const { browser } = yield* Harness.signIn(harness, "alice")
      const login = Layer.succeed(OidcLogin.OidcLogin, harness.login)
      const routes = HttpLayerRouter.addHttpApi(Api).pipe(
        Layer.provide(AccountLive),
        Layer.provide(HttpApiLogin.layerAuthentication),
        Layer.provide(login),
        Layer.provide(
          HttpLayerRouter.middleware(HttpApiLogin.wwwAuthenticate, { global: true }).pipe(
            Layer.provide(login)
          )
        )
      )
      const web = yield* Effect.acquireRelease(
        Effect.sync(() =>
          HttpLayerRouter.toWebHandler(routes.pipe(Layer.provide(NodeHttpServer.layerContext)), {
            disableLogger: true
          })
        ),
        (web) => Effect.promise(() => web.dispose())
      )
      const handler = (request: Request) => web.handler(request, Context.empty() as never)
      const me = yield* call(handler, "/me", browser.cookieHeader)
      assert.strictEqual(me.status, 200)
      assert.strictEqual(JSON.parse(me.body).subject, "alice")
      const anonymous = yield* call(handler, "/me")
      assert.strictEqual(anonymous.status, 401)
      assert.strictEqual(JSON.parse(anonymous.body).error, "unauthenticated")
      assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Cookie realm=/)
    }))
})
