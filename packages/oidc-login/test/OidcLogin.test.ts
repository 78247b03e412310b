import * as ClusterEvents from "@effect-atm/core/ClusterEvents"
import * as DPoP from "@effect-atm/core/DPoP"
import * as TokenEndpoint from "@effect-atm/core/TokenEndpoint"
import * as UserTokens from "@effect-atm/core/UserTokens"
import * as OidcLogin from "@effect-atm/oidc-login/OidcLogin"
import * as SessionStore from "@effect-atm/oidc-login/SessionStore"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { WebSocket } from "undici"
import * as PendingLogin from "../src/internal/pendingLogin.js"
import * as Harness from "./harness.js"

const formOf = (request: HttpClientRequest.HttpClientRequest): URLSearchParams =>
  new URLSearchParams(request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : "")

const signedIn = (harness: Harness.Harness, account: string) =>
  Effect.gen(function*() {
    const result = yield* Harness.signIn(harness, account)
    assert.strictEqual(result.response.status, 303)
    const me = yield* Harness.json(yield* result.browser.fetch("/api/me"))
    return { ...result, sessionId: me.sessionId as string }
  })

/** Everything a sign-in may have left behind: counted writes, and the session cookie. */
const nothingStored = (harness: Harness.Harness, browser: Harness.Browser) => {
  assert.strictEqual(harness.tokenCalls.counts.store ?? 0, 0, "no token was stored")
  assert.strictEqual(harness.sessionCalls.counts.set ?? 0, 0, "no session was created")
  assert.isFalse(browser.cookies.has("atm_session"), "no session cookie was set")
}

describe("OidcLogin", () => {
  it.scopedLive("with dpop, the session gets a proof key: the code exchange, refresh and API calls prove it", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make({ dpop: true })
      const { browser, sessionId } = yield* signedIn(harness, "alice")
      const stored = yield* Harness.storedToken(harness, "alice", sessionId)
      assert.isDefined(stored?.dpopKey, "the session's key is stored with its tokens")
      assert.strictEqual(stored?.accessToken?.tokenType, "DPoP", "the code exchange got a DPoP-bound token")
      const jkt = (JSON.parse(
        Buffer.from(Redacted.value(stored!.accessToken!.accessToken).split(".")[1]!, "base64url").toString()
      ) as { cnf?: { jkt?: string } }).cnf?.jkt
      assert.strictEqual(jkt, DPoP.thumbprint(stored!.dpopKey!), "bound to the session's key")
      // the demo API verifies the proof of every call (and refuses a bound token without one)
      const first = yield* Harness.json(yield* browser.fetch("/api/demo"))
      assert.strictEqual(first.status, 200)
      // a refresh (forced by the API refusing the token once) proves the same key
      yield* harness.provider.resetCounters
      yield* harness.demoApi.rejectNextValidTokens(1)
      const second = yield* Harness.json(yield* browser.fetch("/api/demo"))
      assert.strictEqual(second.status, 200)
      assert.strictEqual(yield* harness.provider.tokenRequests({ grantType: "refresh_token" }), 1)
      const refreshed = yield* Harness.storedToken(harness, "alice", sessionId)
      assert.strictEqual(Redacted.value(refreshed!.dpopKey!), Redacted.value(stored!.dpopKey!))
      assert.isFalse(
        Redacted.value(refreshed!.accessToken!.accessToken) === Redacted.value(stored!.accessToken!.accessToken)
      )
    }))

  it.scopedLive("signs a user in with code + PKCE, seeds the token store and provides CurrentUser", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const browser = new Harness.Browser(harness.url)
      const authorizationUrl = yield* Harness.startSignIn(harness, browser, "/page?tab=2")

      // the authorization request: code flow, PKCE S256, state, nonce, resource, our redirect URI
      const params = authorizationUrl.searchParams
      assert.strictEqual(authorizationUrl.origin, harness.provider.issuer)
      assert.strictEqual(params.get("response_type"), "code")
      assert.strictEqual(params.get("code_challenge_method"), "S256")
      assert.match(params.get("code_challenge")!, /^[A-Za-z0-9_-]{43}$/)
      assert.isNotEmpty(params.get("state"))
      assert.isNotEmpty(params.get("nonce"))
      assert.strictEqual(params.get("resource"), "urn:effect-atm:demo-api")
      assert.strictEqual(params.get("redirect_uri"), `${harness.url}/auth/callback`)
      // the pre-login cookie holds the sign-in sealed (AES-256-GCM): nothing readable, nothing on the server
      const loginCookie = browser.cookies.get("atm_login")!
      assert.match(loginCookie, /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/)
      assert.notInclude(loginCookie, params.get("state")!)
      assert.notInclude(Buffer.from(loginCookie.split(".")[2]!, "base64url").toString("latin1"), params.get("state")!)

      const callbackUrl = yield* harness.provider.authorize(authorizationUrl, "alice")
      const response = yield* browser.fetch(callbackUrl.pathname + callbackUrl.search)
      assert.strictEqual(response.status, 303)
      assert.strictEqual(response.headers.get("location"), "/page?tab=2")
      const setCookie = response.headers.getSetCookie().find((c) => c.startsWith("atm_session="))!
      assert.match(setCookie, /HttpOnly/i)
      assert.match(setCookie, /SameSite=Lax/i)
      assert.notMatch(setCookie, /Secure/i, "not Secure on loopback http")
      assert.isFalse(browser.cookies.has("atm_login"), "the pre-login cookie is cleared")

      const page = yield* browser.fetch("/page")
      assert.strictEqual(yield* Harness.text(page), "hello alice")

      const me = yield* Harness.json(yield* browser.fetch("/api/me"))
      assert.strictEqual(me.sub, "alice")
      // the user's session id is ours: the one inside the signed cookie
      assert.strictEqual(me.sessionId, Harness.sessionIdOf(browser.cookies.get("atm_session")!))
      assert.strictEqual(me.claims.email, "alice@example.test")
      assert.isUndefined(me.claims.nonce, "protocol claims are not kept")

      const stored = yield* Harness.storedToken(harness, "alice", me.sessionId)
      assert.isDefined(stored?.refreshToken, "the refresh token is stored server-side")
      assert.strictEqual(stored?.accessToken?.resource, "urn:effect-atm:demo-api")
      assert.isTrue((yield* harness.provider.introspect(Redacted.value(stored!.refreshToken!))).active)

      // the named client calls the API with the user's stored token
      const demo = yield* Harness.json(yield* browser.fetch("/api/demo"))
      assert.strictEqual(demo.status, 200)
      assert.strictEqual(demo.body.sub, "alice")
      assert.strictEqual(demo.body.aud, "urn:effect-atm:demo-api")
    }))

  it.scopedLive("answers unauthenticated requests: redirect for pages, 401 for APIs and websockets", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const browser = new Harness.Browser(harness.url)
      const page = yield* browser.fetch("/page?x=1")
      assert.strictEqual(page.status, 302)
      assert.strictEqual(page.headers.get("location"), "/auth/login?returnTo=%2Fpage%3Fx%3D1")
      const api = yield* browser.fetch("/api/me")
      assert.strictEqual(api.status, 401)
      assert.strictEqual((yield* Harness.json(api)).error, "unauthenticated")
      const ws = yield* browser.fetch("/ws", {
        headers: {
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="
        }
      }).pipe(Effect.catchAllDefect(() => Effect.succeed(undefined)))
      // fetch cannot upgrade; the server refuses before upgrading
      if (ws !== undefined) assert.strictEqual(ws.status, 401)
    }))

  it.scopedLive("refuses a tampered session cookie without a store lookup", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const { browser } = yield* signedIn(harness, "alice")
      const cookie = browser.cookies.get("atm_session")!
      const last = cookie.at(-2) === "A" ? "B" : "A"
      browser.cookies.set("atm_session", `${cookie.slice(0, -2)}${last}${cookie.at(-1)}`)
      const lookups = harness.sessionCalls.counts.get ?? 0

      const api = yield* browser.fetch("/api/me")
      assert.strictEqual(api.status, 401)
      assert.strictEqual((yield* Harness.json(api)).error, "invalid_session")
      assert.strictEqual(harness.sessionCalls.counts.get ?? 0, lookups, "the signature check came first")
      assert.isFalse(browser.cookies.has("atm_session"), "the refused cookie is expired")

      // a session id with no signature, or signed as a pre-login id, is refused the same way
      browser.cookies.set("atm_session", Harness.sessionIdOf(cookie))
      assert.strictEqual((yield* browser.fetch("/api/me")).status, 401)
      assert.strictEqual(harness.sessionCalls.counts.get ?? 0, lookups)
    }))

  /**
   * One character flipped in the middle of a cookie value: the last character of base64url may carry only padding
   * bits, so changing it can leave the decoded bytes (and the signature) intact.
   */
  const tamper = (value: string) => {
    let at = Math.floor(value.length / 2)
    if (!/[A-Za-z0-9_-]/.test(value[at]!)) at -= 1
    return value.slice(0, at) + (value[at] === "A" ? "B" : "A") + value.slice(at + 1)
  }

  it.scopedLive("refuses a forged callback: no pre-login cookie, wrong or missing state; nothing is stored", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const victim = new Harness.Browser(harness.url)
      // an attacker's own authorization response, delivered to a browser that started no sign-in
      const attacker = new Harness.Browser(harness.url)
      const attackerUrl = yield* Harness.startSignIn(harness, attacker)
      const forged = yield* harness.provider.authorize(attackerUrl, "mallory")
      const noCookie = yield* victim.fetch(forged.pathname + forged.search)
      assert.strictEqual(noCookie.status, 400)
      assert.include(yield* Harness.text(noCookie), "LoginRequestNotFound")

      // the victim started a sign-in of their own: the attacker's state does not match it
      yield* Harness.startSignIn(harness, victim)
      const victimCookie = victim.cookies.get("atm_login")!
      const wrongState = yield* victim.fetch(forged.pathname + forged.search)
      assert.strictEqual(wrongState.status, 400)
      assert.include(yield* Harness.text(wrongState), "StateMismatch")
      assert.isFalse(victim.cookies.has("atm_login"), "a failed callback clears the pre-login cookie")
      // with its cookie back, the forged response still does not match the victim's sign-in
      victim.cookies.set("atm_login", victimCookie)
      const again = yield* victim.fetch(forged.pathname + forged.search)
      assert.include(yield* Harness.text(again), "StateMismatch")

      yield* Harness.startSignIn(harness, victim)
      const missingState = yield* victim.fetch(`/auth/callback?code=${forged.searchParams.get("code")}`)
      assert.strictEqual(missingState.status, 400)
      assert.include(yield* Harness.text(missingState), "StateMismatch")

      // a tampered pre-login cookie
      yield* Harness.startSignIn(harness, victim)
      victim.cookies.set("atm_login", tamper(victim.cookies.get("atm_login")!))
      const tampered = yield* victim.fetch(forged.pathname + forged.search)
      assert.include(yield* Harness.text(tampered), "signature check")

      nothingStored(harness, victim)
    }))

  it.scopedLive("refuses a replayed callback, and a replayed code at the provider", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const browser = new Harness.Browser(harness.url)
      const url = yield* Harness.startSignIn(harness, browser)
      const loginCookie = browser.cookies.get("atm_login")!
      const callbackUrl = yield* harness.provider.authorize(url, "alice")
      assert.strictEqual((yield* browser.fetch(callbackUrl.pathname + callbackUrl.search)).status, 303)
      const stores = harness.tokenCalls.counts.store
      const sessionsCreated = harness.sessionCalls.counts.set

      // the same callback URL again, from the same browser: its pre-login cookie was cleared
      const replay = yield* browser.fetch(callbackUrl.pathname + callbackUrl.search)
      assert.strictEqual(replay.status, 400)
      assert.include(yield* Harness.text(replay), "did not start a sign-in")
      // with the pre-login cookie too (captured by an attacker): the provider refuses the used code
      browser.cookies.set("atm_login", loginCookie)
      const replayWithCookie = yield* browser.fetch(callbackUrl.pathname + callbackUrl.search)
      assert.strictEqual(replayWithCookie.status, 400)
      const body = yield* Harness.text(replayWithCookie)
      assert.include(body, "CodeExchangeFailed")
      assert.include(body, "invalid_grant")
      assert.isFalse(browser.cookies.has("atm_login"), "every answer of the callback expires the pre-login cookie")
      assert.strictEqual(harness.tokenCalls.counts.store, stores, "nothing more was stored")
      assert.strictEqual(harness.sessionCalls.counts.set, sessionsCreated)
    }))

  it.scopedLive("shows the provider's error response, and refuses a response from another issuer", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const browser = new Harness.Browser(harness.url)
      const url = yield* Harness.startSignIn(harness, browser)
      const state = url.searchParams.get("state")!
      const denied = yield* browser.fetch(
        `/auth/callback?error=access_denied&error_description=End-User+aborted+interaction&state=${state}&iss=${
          encodeURIComponent(harness.provider.issuer)
        }`
      )
      assert.strictEqual(denied.status, 400)
      const page = yield* Harness.text(denied)
      assert.include(page, "AuthorizationFailed")
      assert.include(page, "access_denied")
      assert.include(page, "cancelled or refused")

      const url2 = yield* Harness.startSignIn(harness, browser)
      const redirect = yield* harness.provider.authorize(url2, "alice")
      redirect.searchParams.set("iss", "https://evil.example")
      const wrongIssuer = yield* browser.fetch(redirect.pathname + redirect.search)
      assert.strictEqual(wrongIssuer.status, 400)
      const wrongIssuerPage = yield* Harness.text(wrongIssuer)
      assert.include(wrongIssuerPage, "InvalidAuthorizationResponse")
      assert.include(wrongIssuerPage, "issuer")
      nothingStored(harness, browser)
    }))

  it.scopedLive("signs out: revokes the refresh token, clears the tokens and the session, closes websockets", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const { browser, sessionId } = yield* signedIn(harness, "alice")
      const refreshToken = Redacted.value((yield* Harness.storedToken(harness, "alice", sessionId))!.refreshToken!)

      const socket = new WebSocket(`${harness.url.replace("http", "ws")}/ws`, {
        headers: { cookie: browser.cookieHeader, origin: harness.url }
      })
      const messages: Array<string> = []
      socket.addEventListener("message", (event) => messages.push(String(event.data)))
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        socket.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason }))
      )
      yield* Effect.promise(() => new Promise((resolve) => socket.addEventListener("message", resolve, { once: true })))
      assert.deepStrictEqual(JSON.parse(messages[0]!), { sub: "alice" })
      assert.strictEqual(yield* harness.login.connections, 1)

      // a cross-origin sign-out is refused
      const foreign = yield* browser.fetch("/auth/logout", {
        method: "POST",
        headers: { origin: "https://evil.example" }
      })
      assert.strictEqual(foreign.status, 403)

      const logout = yield* browser.fetch("/auth/logout", { method: "POST", headers: { origin: harness.url } })
      assert.strictEqual(logout.status, 303)
      const location = new URL(logout.headers.get("location")!)
      assert.strictEqual(location.href.split("?")[0], harness.provider.endSessionEndpoint)
      assert.strictEqual(location.searchParams.get("post_logout_redirect_uri"), `${harness.url}/`)
      assert.isNotEmpty(location.searchParams.get("id_token_hint"))
      assert.isFalse(browser.cookies.has("atm_session"))

      const close = yield* Effect.promise(() => closed)
      assert.strictEqual(close.code, 4001)
      assert.strictEqual(yield* harness.login.connections, 0)
      assert.isFalse((yield* harness.provider.introspect(refreshToken)).active, "the refresh token is revoked")
      assert.isUndefined(yield* Harness.storedToken(harness, "alice", sessionId), "the tokens are cleared")
      assert.isTrue(Option.isNone(yield* harness.sessions.get(sessionId)), "the session is gone")

      // the old cookie, if the browser kept it, opens nothing
      browser.cookies.set("atm_session", "x")
      assert.strictEqual((yield* browser.fetch("/api/me")).status, 401)
    }))

  it.scopedLive("refuses a websocket without a session or from another origin", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const { browser } = yield* signedIn(harness, "alice")
      const open = (headers: Record<string, string>) =>
        Effect.promise(() =>
          new Promise<string>((resolve) => {
            const socket = new WebSocket(`${harness.url.replace("http", "ws")}/ws`, { headers })
            socket.addEventListener("open", () => {
              socket.close()
              resolve("open")
            })
            socket.addEventListener("error", () => resolve("refused"))
          })
        )
      assert.strictEqual(yield* open({ origin: harness.url }), "refused")
      assert.strictEqual(yield* open({ cookie: browser.cookieHeader, origin: "https://evil.example" }), "refused")
      assert.strictEqual(yield* open({ cookie: browser.cookieHeader, origin: harness.url }), "open")
    }))

  it.scoped("ends sessions after the idle timeout, and after the absolute timeout however busy", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make({
        login: { session: { idleTimeout: "10 minutes", absoluteTimeout: "30 minutes" } }
      })
      const { browser } = yield* signedIn(harness, "alice")
      const status = Effect.map(browser.fetch("/api/me"), (response) => response.status)

      yield* TestClock.adjust("9 minutes")
      assert.strictEqual(yield* status, 200, "used before the idle timeout: slides it")
      yield* TestClock.adjust("9 minutes")
      assert.strictEqual(yield* status, 200)
      yield* TestClock.adjust("11 minutes")
      assert.strictEqual(yield* status, 401, "idle for 11 minutes")

      const second = yield* signedIn(harness, "bob")
      const busy = Effect.map(second.browser.fetch("/api/me"), (response) => response.status)
      for (let minute = 5; minute < 30; minute += 5) {
        yield* TestClock.adjust("5 minutes")
        assert.strictEqual(yield* busy, 200, `busy at ${minute} minutes`)
      }
      yield* TestClock.adjust("5 minutes")
      assert.strictEqual(yield* busy, 401, "the absolute timeout ends even a busy session")
    }))

  it.scopedLive("a new sign-in in the same browser starts a new session and ends the previous one", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const first = yield* signedIn(harness, "alice")
      const firstToken = (yield* Harness.storedToken(harness, "alice", first.sessionId))!
      const second = yield* Harness.signIn(harness, "bob", { browser: first.browser })
      assert.strictEqual(second.response.status, 303)
      const me = yield* Harness.json(yield* first.browser.fetch("/api/me"))
      assert.strictEqual(me.sub, "bob")
      assert.notStrictEqual(me.sessionId, first.sessionId, "no session fixation: a fresh id")
      assert.isTrue(Option.isNone(yield* harness.sessions.get(first.sessionId)))
      assert.isUndefined(yield* Harness.storedToken(harness, "alice", first.sessionId))
      assert.isFalse((yield* harness.provider.introspect(Redacted.value(firstToken.refreshToken!))).active)
    }))

  it.scoped("ends a websocket whose session was ended elsewhere, at the next session check", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make({ login: { session: { connectionCheckInterval: "30 seconds" } } })
      const { browser, sessionId } = yield* signedIn(harness, "alice")
      const socket = new WebSocket(`${harness.url.replace("http", "ws")}/ws`, {
        headers: { cookie: browser.cookieHeader }
      })
      const closed = new Promise<number>((resolve) => socket.addEventListener("close", (event) => resolve(event.code)))
      yield* Effect.promise(() => new Promise((resolve) => socket.addEventListener("open", resolve, { once: true })))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
      assert.strictEqual(yield* harness.login.connections, 1)
      // another instance signed the session out: this one only learns it from the shared store
      yield* harness.sessions.remove(sessionId)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* Effect.promise(() => closed), OidcLogin.sessionEndedCloseCode)
      assert.strictEqual(yield* harness.login.connections, 0)
    }))

  it.scopedLive("over https: __Host- cookies, Secure, and the redirect URI from the base URL", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make({ login: { baseUrl: "https://app.example.com" } })
      const browser = new Harness.Browser(harness.url)
      const response = yield* browser.fetch("/auth/login?returnTo=https://evil.example/")
      const cookie = response.headers.getSetCookie()[0]!
      assert.match(cookie, /^__Host-atm_login=/)
      assert.match(cookie, /; Secure/i)
      assert.match(cookie, /; Path=\//i)
      const location = new URL(response.headers.get("location")!)
      assert.strictEqual(location.searchParams.get("redirect_uri"), "https://app.example.com/auth/callback")
      const sealed = cookie.slice(cookie.indexOf("=") + 1, cookie.indexOf(";"))
      const pending = PendingLogin.open([Harness.secret], "__Host-atm_login", sealed, Date.now())
      assert.isObject(pending)
      assert.strictEqual((pending as PendingLogin.PendingLogin).returnTo, "/", "returnTo never leaves the site")
    }))

  it.effect("is configured from Effect Config, and an invalid value fails naming the field", () =>
    Effect.gen(function*() {
      const env = {
        OIDC_ISSUER: "https://login.example.com",
        OIDC_CLIENT_ID: "web",
        OIDC_CLIENT_SECRET: "web-secret",
        OIDC_BASE_URL: "https://app.example.com",
        OIDC_RESOURCE: "urn:api",
        OIDC_SESSION_IDLE_TIMEOUT: "20 minutes",
        OIDC_SESSION_SECRET: "0123456789abcdef0123456789abcdef"
      }
      const client = { issuer: env.OIDC_ISSUER, clientId: "web", clientSecret: Redacted.make("web-secret") }
      const dependencies = Layer.mergeAll(
        UserTokens.layerMemory({ client, discovery: "lazy" }), // no provider behind login.example.com
        SessionStore.layerMemory(),
        ClusterEvents.layerMemory
      ).pipe(Layer.provideMerge(TokenEndpoint.layer()), Layer.provide(FetchHttpClient.layer))
      const load = (values: Record<string, string>) =>
        OidcLogin.OidcLogin.pipe(
          Effect.provide(OidcLogin.layerConfig().pipe(Layer.provide(dependencies))),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(values)), { pathDelim: "_" }))
        )

      const login = yield* load(env)
      assert.strictEqual(login.settings.redirectUri, "https://app.example.com/auth/callback")
      assert.strictEqual(login.settings.resource, "urn:api")
      assert.strictEqual(login.settings.idleTimeoutMillis, 20 * 60_000)
      assert.strictEqual(login.settings.sessionCookie, "__Host-atm_session")
      assert.isTrue(login.settings.secure)

      const failure = (values: Record<string, string>) =>
        Effect.map(Effect.flip(load(values)), (error) => error as { _tag: string; field?: string; message: string })
      const insecure = yield* failure({ ...env, OIDC_BASE_URL: "http://app.example.com" })
      assert.strictEqual(insecure.field, "baseUrl")
      assert.include(insecure.message, "https://")
      assert.strictEqual((yield* failure({ ...env, OIDC_SCOPE: "profile" })).field, "scope")
      assert.strictEqual((yield* failure({ ...env, OIDC_SESSION_SECRET: "short" })).field, "session.secret")
      const badIssuer = yield* failure({ ...env, OIDC_ISSUER: "login.example.com" })
      assert.strictEqual(badIssuer._tag, "InvalidClientConfiguration")
      assert.strictEqual(badIssuer.field, "issuer")
      const noBase = yield* failure(Object.fromEntries(Object.entries(env).filter(([k]) => k !== "OIDC_BASE_URL")))
      assert.strictEqual(noBase._tag, "ConfigError")
      // in code: the same checks
      const inCode = yield* Effect.flip(
        OidcLogin.OidcLogin.pipe(
          Effect.provide(OidcLogin.layer({ client: { clientId: "web" }, baseUrl: "https://app.example.com" })),
          Effect.provide(dependencies)
        )
      )
      assert.strictEqual(inCode._tag, "InvalidClientConfiguration")
      assert.include(inCode.message, "issuer")
    }))

  it.scopedLive("checks the ID token's nonce against the sign-in's", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const browser = new Harness.Browser(harness.url)
      const url = yield* Harness.startSignIn(harness, browser)
      const redirect = yield* harness.provider.authorize(url, "alice")
      // the provider signs the nonce it was sent; the sign-in expects another one
      const pending = PendingLogin.open([Harness.secret], "atm_login", browser.cookies.get("atm_login")!, Date.now())
      assert.isObject(pending)
      browser.cookies.set(
        "atm_login",
        PendingLogin.seal(Harness.secret, "atm_login", {
          ...pending as PendingLogin.PendingLogin,
          nonce: Redacted.make("other")
        })
      )
      const response = yield* browser.fetch(redirect.pathname + redirect.search)
      assert.strictEqual(response.status, 400)
      const page = yield* Harness.text(response)
      assert.include(page, "IdTokenRejected")
      assert.include(page, "nonce")
      nothingStored(harness, browser)
    }))

  it.scopedLive("answers 502 when the provider is down, and stores nothing", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const browser = new Harness.Browser(harness.url)
      const url = yield* Harness.startSignIn(harness, browser)
      const redirect = yield* harness.provider.authorize(url, "alice")
      yield* harness.provider.setTokenFault({ _tag: "ServerError", status: 503 })
      const response = yield* browser.fetch(redirect.pathname + redirect.search)
      assert.strictEqual(response.status, 502)
      assert.include(yield* Harness.text(response), "ProviderUnavailable")
      nothingStored(harness, browser)

      const unreachable = yield* Harness.make({
        login: { client: { issuer: "http://127.0.0.1:9", clientId: "web", clientSecret: Redacted.make("x") } }
      })
      const start = yield* new Harness.Browser(unreachable.url).fetch("/auth/login")
      assert.strictEqual(start.status, 502)
      assert.include(yield* Harness.text(start), "Try again in a moment")
    }))

  it.scopedLive("speaks to the provider only through the application's HttpClient", () =>
    Effect.gen(function*() {
      const seen: Array<{ readonly url: string; readonly grantType: string | null }> = []
      const harness = yield* Harness.make({
        transport: (client) =>
          HttpClient.tapRequest(client, (request) =>
            Effect.sync(() => {
              seen.push({ url: request.url, grantType: formOf(request).get("grant_type") })
            }))
      })
      const { response } = yield* signedIn(harness, "alice")
      assert.strictEqual(response.status, 303)
      assert.isTrue(seen.some((entry) => entry.url.endsWith("/.well-known/openid-configuration")), "discovery")
      assert.isTrue(
        seen.some((entry) => entry.grantType === "authorization_code"),
        "the code exchange went through the application's HttpClient"
      )
    }))

  it.scopedLive("a failing transport gives a typed ProviderUnavailable, and stores nothing", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make({
        transport: (client) =>
          HttpClient.transform(client, (response, request) =>
            formOf(request).get("grant_type") === "authorization_code"
              ? Effect.fail(
                new HttpClientError.RequestError({ request, reason: "Transport", cause: new Error("ECONNRESET") })
              )
              : response)
      })
      const browser = new Harness.Browser(harness.url)
      const url = yield* Harness.startSignIn(harness, browser)
      const redirect = yield* harness.provider.authorize(url, "alice")
      const response = yield* browser.fetch(redirect.pathname + redirect.search)
      assert.strictEqual(response.status, 502)
      const page = yield* Harness.text(response)
      assert.include(page, "ProviderUnavailable")
      assert.include(page, "ECONNRESET")
      nothingStored(harness, browser)
    }))

  it.scoped("a session that expires (idle or absolute) has its tokens revoked and cleared", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make({
        login: { session: { idleTimeout: "10 minutes", absoluteTimeout: "30 minutes", sweepInterval: "1 minute" } }
      })
      const idle = yield* signedIn(harness, "alice")
      const idleToken = Redacted.value((yield* Harness.storedToken(harness, "alice", idle.sessionId))!.refreshToken!)
      const busy = yield* signedIn(harness, "bob")
      const busyToken = Redacted.value((yield* Harness.storedToken(harness, "bob", busy.sessionId))!.refreshToken!)
      const status = (browser: Harness.Browser) => Effect.map(browser.fetch("/api/me"), (r) => r.status)
      /** Lets the sweeper (forked on the test clock) finish its requests to the provider, on the real clock. */
      const settled = (check: Effect.Effect<boolean>) =>
        Effect.gen(function*() {
          for (let i = 0; i < 200 && !(yield* check); i++) {
            yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 25)))
          }
        })

      for (let minute = 5; minute <= 15; minute += 5) {
        yield* TestClock.adjust("5 minutes")
        assert.strictEqual(yield* status(busy.browser), 200)
      }
      // alice idle for 15 minutes: the sweeper took her session out, closed it and revoked its tokens
      yield* settled(Effect.map(Effect.orDie(Harness.storedToken(harness, "alice", idle.sessionId)), (t) => !t))
      assert.isUndefined(yield* Harness.storedToken(harness, "alice", idle.sessionId), "idle: the tokens are cleared")
      assert.isFalse((yield* harness.provider.introspect(idleToken)).active, "idle: the refresh token is revoked")
      assert.isTrue((yield* harness.provider.introspect(busyToken)).active, "a live session keeps its tokens")

      for (let minute = 20; minute <= 35; minute += 5) {
        yield* TestClock.adjust("5 minutes")
        yield* status(busy.browser)
      }
      yield* settled(Effect.map(Effect.orDie(Harness.storedToken(harness, "bob", busy.sessionId)), (t) => !t))
      assert.strictEqual(yield* status(busy.browser), 401)
      assert.isUndefined(yield* Harness.storedToken(harness, "bob", busy.sessionId), "absolute: the tokens are cleared")
      assert.isFalse((yield* harness.provider.introspect(busyToken)).active, "absolute: the refresh token is revoked")
    }))

  it.scopedLive(
    "20,000 anonymous sign-in starts do not stop a user's sign-in started before them",
    () =>
      Effect.gen(function*() {
        const harness = yield* Harness.make()
        const user = new Harness.Browser(harness.url)
        // the user is at the provider's login page while the flood runs (an authorization code lives a minute)
        const url = yield* Harness.startSignIn(harness, user)

        // anonymous callers, each without cookies: 20,000 sign-ins started, nothing kept on the server for them
        let started = 0
        yield* Effect.forEach(
          Array.from({ length: 20_000 }),
          () =>
            Effect.promise(() => fetch(`${harness.url}/auth/login`, { redirect: "manual" })).pipe(
              Effect.tap((response) =>
                Effect.promise(() => response.arrayBuffer()).pipe(
                  Effect.map(() => {
                    if (response.status === 302) started++
                  })
                )
              )
            ),
          { concurrency: 32, discard: true }
        )
        assert.strictEqual(started, 20_000)
        assert.strictEqual(harness.sessionCalls.counts.set ?? 0, 0, "no sign-in start wrote to the session store")

        const callback = yield* harness.provider.authorize(url, "alice")
        const done = yield* user.fetch(callback.pathname + callback.search)
        assert.strictEqual(done.status, 303, "the user's sign-in completes")
        assert.strictEqual((yield* user.fetch("/api/me")).status, 200)
      }),
    { timeout: 180_000 }
  )

  it.scopedLive("websocket limits: a message over the size limit closes the connection, a session's connections are capped", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make({
        login: { websocket: { maxMessageBytes: 1024, maxConnectionsPerSession: 3 } }
      })
      const { browser } = yield* signedIn(harness, "alice")
      const headers = { cookie: browser.cookieHeader, origin: harness.url }
      const open = Effect.promise(() =>
        new Promise<WebSocket | undefined>((resolve) => {
          const socket = new WebSocket(`${harness.url.replace("http", "ws")}/ws`, { headers })
          socket.addEventListener("open", () => resolve(socket))
          socket.addEventListener("error", () => resolve(undefined))
        })
      )
      const closed = (socket: WebSocket) =>
        Effect.promise(() =>
          new Promise<CloseEvent>((resolve) => socket.addEventListener("close", resolve as never, { once: true }))
        )

      const small = (yield* open)!
      small.send("x".repeat(1024))
      const big = (yield* open)!
      const bigClosed = closed(big)
      big.send("x".repeat(1025))
      assert.strictEqual((yield* bigClosed).code, 1009, "a message over the limit closes the connection")
      assert.strictEqual(small.readyState, WebSocket.OPEN, "a message at the limit is accepted")

      const more = [yield* open, yield* open]
      assert.isDefined(more[0])
      assert.isDefined(more[1])
      assert.strictEqual(yield* harness.login.connections, 3)
      assert.isUndefined(yield* open, "a fourth connection of the session is refused")
      const smallClosed = closed(small)
      small.close()
      yield* smallClosed
      // the server notices the close: then a new connection fits again
      let reopened: WebSocket | undefined
      for (let i = 0; i < 40 && reopened === undefined; i++) {
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
        reopened = yield* open
      }
      assert.isDefined(reopened)
      for (const socket of [...more, reopened]) socket?.close()
    }))
})
