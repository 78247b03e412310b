import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as client from "openid-client"
import { afterEach, vi } from "vitest"
import * as IdentityProvider from "../src/IdentityProvider.js"
import { decode, decodeHeader, discover, login, oauthError, rawTokenRequest } from "./helpers.js"

const { Clients, Resources } = IdentityProvider
const ACCESS_TOKEN_TTL = 120

/** The key ids of the provider's published JWKS, sorted. */
const publishedKeyIds = (issuer: string) =>
  Effect.promise(async () => {
    const metadata = await fetch(`${issuer}/.well-known/openid-configuration`).then((r) => r.json())
    const jwks = await fetch((metadata as { jwks_uri: string }).jwks_uri).then((r) => r.json())
    return (jwks as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid).sort()
  })

describe("IdentityProvider startup", () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  // First in the file: it is also the first import of oidc-provider, which warns about Node.js < 22 by itself.
  it.scoped("starts quietly, fast, and stops listening when its scope closes", () =>
    Effect.gen(function*() {
      const calls: Array<unknown> = []
      for (const method of ["log", "info", "warn", "error", "debug"] as const) {
        vi.spyOn(console, method).mockImplementation((...args) => void calls.push(args))
      }
      const [issuer, firstKeys] = yield* Effect.scoped(Effect.gen(function*() {
        const op = yield* IdentityProvider.make()
        const config = yield* discover(op, Clients.machineBasic)
        yield* Effect.promise(() => client.clientCredentialsGrant(config, { scope: "api.read" }))
        yield* Effect.promise(() => fetch(`${op.issuer}/no-such-page`).then((r) => r.text()))
        return [op.issuer, yield* publishedKeyIds(op.issuer)] as const
      }))
      assert.deepStrictEqual(calls, [], "no console output")
      const after = yield* Effect.promise(() => fetch(issuer).then(() => "answered", () => "refused"))
      assert.strictEqual(after, "refused")

      // the keys are made once per process (RSA generation is slow): a second provider publishes the same ones
      const secondKeys = yield* Effect.scoped(
        Effect.flatMap(IdentityProvider.make(), (op) => publishedKeyIds(op.issuer))
      )
      assert.isNotEmpty(firstKeys)
      assert.deepStrictEqual(secondKeys, firstKeys, "a second provider starts without generating keys again")
    }))

  it.effect("rejects invalid options when it starts", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(IdentityProvider.make({ accessTokenTtl: 0 })))
      assert.isTrue(Exit.isFailure(exit) && String(exit.cause).includes("accessTokenTtl"))
    }))
})

layer(IdentityProvider.layer({ accessTokenTtl: ACCESS_TOKEN_TTL }))("IdentityProvider", (it) => {
  const reset = Effect.gen(function*() {
    const op = yield* IdentityProvider.IdentityProvider
    yield* op.setTokenFault(undefined)
    yield* op.resetCounters
    return op
  })

  it.effect("publishes its endpoints by discovery", () =>
    Effect.gen(function*() {
      const op = yield* reset
      assert.match(op.issuer, /^http:\/\/127\.0\.0\.1:\d+$/)
      const config = yield* discover(op, Clients.web)
      const metadata = config.serverMetadata()
      assert.strictEqual(metadata.issuer, op.issuer)
      assert.strictEqual(metadata.token_endpoint, op.tokenEndpoint)
      assert.strictEqual(metadata.revocation_endpoint, op.revocationEndpoint)
      assert.strictEqual(metadata.introspection_endpoint, op.introspectionEndpoint)
      assert.strictEqual(metadata.jwks_uri, op.jwksUri)
      assert.strictEqual(metadata.authorization_endpoint, op.authorizationEndpoint)
      assert.strictEqual(metadata.end_session_endpoint, op.endSessionEndpoint)
      assert.deepStrictEqual(metadata.code_challenge_methods_supported, ["S256"])
      for (const grant of ["authorization_code", "refresh_token", "client_credentials"]) {
        assert.include(metadata.grant_types_supported ?? [], grant)
      }
      const jwks = yield* Effect.promise(() => fetch(op.jwksUri).then((r) => r.json() as Promise<any>))
      assert.sameMembers(jwks.keys.map((k: any) => k.kty), ["RSA", "EC"])
      assert.isTrue(jwks.keys.every((k: any) => k.d === undefined), "only public keys are published")
    }))

  it.effect("client credentials (basic and post) give a JWT for the demo API that lives accessTokenTtl", () =>
    Effect.gen(function*() {
      const op = yield* reset
      for (const [credentials, method] of [[Clients.machineBasic, "basic"], [Clients.machinePost, "post"]] as const) {
        const config = yield* discover(op, credentials, method)
        const response = yield* Effect.promise(() => client.clientCredentialsGrant(config, { scope: "api.read" }))
        assert.strictEqual(response.token_type.toLowerCase(), "bearer")
        assert.strictEqual(response.expires_in, ACCESS_TOKEN_TTL)
        assert.strictEqual(response.scope, "api.read")
        const claims = decode(response.access_token)
        assert.strictEqual(decodeHeader(response.access_token).typ, "at+jwt")
        assert.strictEqual(claims.iss, op.issuer)
        assert.strictEqual(claims.aud, Resources.demoApi)
        assert.strictEqual(claims.client_id, credentials.clientId)
        assert.strictEqual(claims.exp - claims.iat, ACCESS_TOKEN_TTL)
      }
      const config = yield* discover(op, Clients.machineBasic)
      const other = yield* Effect.promise(() =>
        client.clientCredentialsGrant(config, { scope: "other.read api.read", resource: Resources.otherApi })
      )
      assert.strictEqual(decode(other.access_token).aud, Resources.otherApi)
      assert.strictEqual(other.scope, "other.read", "scopes of other resources are dropped")
      const unknown = yield* oauthError(() => client.clientCredentialsGrant(config, { resource: "urn:nope" }))
      assert.strictEqual(unknown.error, "invalid_target")
    }))

  it.effect("counts token requests by grant type and client, failed ones included", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const basic = yield* discover(op, Clients.machineBasic)
      const post = yield* discover(op, Clients.machinePost, "post")
      yield* Effect.promise(() => client.clientCredentialsGrant(basic))
      yield* Effect.promise(() => client.clientCredentialsGrant(basic))
      yield* Effect.promise(() => client.clientCredentialsGrant(post))
      const wrongSecret = yield* discover(op, { clientId: "machine-post", clientSecret: "nope" }, "post")
      assert.strictEqual(
        (yield* oauthError(() => client.clientCredentialsGrant(wrongSecret))).error,
        "invalid_client"
      )
      const web = yield* discover(op, Clients.web)
      yield* oauthError(() => client.refreshTokenGrant(web, "not-a-refresh-token"))

      assert.strictEqual(yield* op.tokenRequests(), 5)
      assert.strictEqual(yield* op.tokenRequests({ grantType: "client_credentials" }), 4)
      assert.strictEqual(yield* op.tokenRequests({ clientId: "machine-basic" }), 2)
      assert.strictEqual(yield* op.tokenRequests({ clientId: "machine-post" }), 2)
      assert.strictEqual(yield* op.tokenRequests({ grantType: "client_credentials", clientId: "machine-post" }), 2)
      assert.strictEqual(yield* op.tokenRequests({ grantType: "refresh_token", clientId: "web" }), 1)
      yield* op.resetCounters
      assert.strictEqual(yield* op.tokenRequests(), 0)
    }))

  it.effect("faults: ServerError, NonJson, MalformedJson, TruncatedJson answer instead of the provider", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const form = { grant_type: "client_credentials", scope: "api.read" }
      const credentials = [Clients.machineBasic.clientId, Clients.machineBasic.clientSecret] as const

      yield* op.setTokenFault({ _tag: "ServerError" }, { times: 1 })
      const unavailable = yield* rawTokenRequest(op, form, credentials)
      assert.strictEqual(unavailable.status, 503)
      assert.match(unavailable.contentType, /^text\/html/)
      assert.strictEqual((yield* rawTokenRequest(op, form, credentials)).status, 200, "times: 1 is used up")

      yield* op.setTokenFault({ _tag: "ServerError", status: 500 })
      assert.strictEqual((yield* rawTokenRequest(op, form, credentials)).status, 500)
      assert.strictEqual((yield* rawTokenRequest(op, form, credentials)).status, 500, "no times: until cleared")

      yield* op.setTokenFault({ _tag: "NonJson" })
      const html = yield* rawTokenRequest(op, form, credentials)
      assert.strictEqual(html.status, 200)
      assert.match(html.contentType, /^text\/html/)

      yield* op.setTokenFault({ _tag: "MalformedJson" })
      const malformed = yield* rawTokenRequest(op, form, credentials)
      assert.match(malformed.contentType, /^application\/json/)
      assert.deepStrictEqual(JSON.parse(malformed.text), { foo: 1 })

      yield* op.setTokenFault({ _tag: "TruncatedJson" })
      const truncated = yield* rawTokenRequest(op, form, credentials)
      assert.strictEqual(truncated.status, 200)
      assert.match(truncated.contentType, /^application\/json/)
      assert.throws(() => JSON.parse(truncated.text))

      yield* op.setTokenFault(undefined)
      assert.strictEqual((yield* rawTokenRequest(op, form, credentials)).status, 200)

      // an RP sees these as failures, and every faulted request was counted with its grant and client
      yield* op.setTokenFault({ _tag: "MalformedJson" }, { times: 1 })
      const config = yield* discover(op, Clients.machineBasic)
      yield* oauthError(() => client.clientCredentialsGrant(config))
      assert.strictEqual(yield* op.tokenRequests({ grantType: "client_credentials", clientId: "machine-basic" }), 9)
    }))

  it.effect("faults: Delay, WrongTokenType and MissingExpiresIn alter a real token response", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const form = { grant_type: "client_credentials", client_id: "machine-post", client_secret: "machine-post-secret" }

      yield* op.setTokenFault({ _tag: "Delay", millis: 300 }, { times: 1 })
      const started = Date.now()
      const delayed = yield* rawTokenRequest(op, form)
      assert.isAtLeast(Date.now() - started, 290)
      assert.strictEqual(delayed.status, 200)
      assert.isString(JSON.parse(delayed.text).access_token)

      yield* op.setTokenFault({ _tag: "WrongTokenType" }, { times: 1 })
      const mac = JSON.parse((yield* rawTokenRequest(op, form)).text)
      assert.strictEqual(mac.token_type, "mac")
      assert.strictEqual(decode(mac.access_token).aud, Resources.demoApi)

      yield* op.setTokenFault({ _tag: "MissingExpiresIn" }, { times: 1 })
      const noExpiry = JSON.parse((yield* rawTokenRequest(op, form)).text)
      assert.isUndefined(noExpiry.expires_in)
      assert.isString(noExpiry.access_token)

      const normal = JSON.parse((yield* rawTokenRequest(op, form)).text)
      assert.strictEqual(normal.token_type, "Bearer")
      assert.strictEqual(normal.expires_in, ACCESS_TOKEN_TTL)
      assert.strictEqual(yield* op.tokenRequests({ clientId: "machine-post" }), 4)
    }))

  it.effect("faults: EmptyBody, Retry-After, HugeBody, MissingAccessToken and Downtime", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const form = { grant_type: "client_credentials", client_id: "machine-post", client_secret: "machine-post-secret" }

      for (const status of [400, 401, 403]) {
        yield* op.setTokenFault({ _tag: "EmptyBody", status }, { times: 1 })
        const empty = yield* rawTokenRequest(op, form)
        assert.strictEqual(empty.status, status)
        assert.strictEqual(empty.text, "", "no body at all, not even an OAuth error")
      }

      yield* op.setTokenFault({ _tag: "ServerError", status: 429, retryAfter: 7 }, { times: 1 })
      const throttled = yield* rawTokenRequest(op, form)
      assert.strictEqual(throttled.status, 429)
      assert.strictEqual(throttled.retryAfter, "7")
      const date = "Tue, 01 Jan 2030 00:02:00 GMT"
      yield* op.setTokenFault({ _tag: "ServerError", retryAfter: date }, { times: 1 })
      assert.strictEqual((yield* rawTokenRequest(op, form)).retryAfter, date)

      yield* op.setTokenFault({ _tag: "HugeBody", bytes: 3_000_000 }, { times: 1 })
      const huge = yield* rawTokenRequest(op, form)
      assert.strictEqual(huge.status, 200)
      assert.strictEqual(huge.text.length, 3_000_000)

      yield* op.setTokenFault({ _tag: "MissingAccessToken" }, { times: 1 })
      const noAccessToken = JSON.parse((yield* rawTokenRequest(op, form)).text)
      assert.isUndefined(noAccessToken.access_token)
      assert.strictEqual(noAccessToken.token_type, "Bearer")

      yield* op.setTokenFault({ _tag: "Downtime", millis: 60_000 }, { times: 1 })
      assert.strictEqual((yield* rawTokenRequest(op, form)).status, 503)
      assert.strictEqual((yield* rawTokenRequest(op, form)).status, 503, "downtime lasts its time, not `times`")
      yield* op.setTokenFault({ _tag: "Downtime", millis: 0 })
      assert.strictEqual((yield* rawTokenRequest(op, form)).status, 200, "downtime over: the fault clears itself")
      assert.strictEqual((yield* rawTokenRequest(op, form)).status, 200)
      assert.strictEqual(yield* op.tokenRequests({ clientId: "machine-post" }), 11, "every request counted")
    }))

  it.effect("faults: ConnectionReset closes the connection without an answer, counted, then clears", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const form = { grant_type: "client_credentials", client_id: "machine-post", client_secret: "machine-post-secret" }
      yield* op.setTokenFault({ _tag: "ConnectionReset" }, { times: 2 })
      for (let i = 0; i < 2; i++) {
        const failed = yield* Effect.exit(Effect.tryPromise(() => rawTokenRequest(op, form).pipe(Effect.runPromise)))
        assert.isTrue(Exit.isFailure(failed), "no HTTP answer at all")
      }
      assert.strictEqual((yield* rawTokenRequest(op, form)).status, 200, "`times` used up: answers again")
      assert.strictEqual(yield* op.tokenRequests({ clientId: "machine-post" }), 3, "every request counted")
    }))

  it.effect("authorization code flow via authorize(): access, refresh and ID token", () =>
    Effect.gen(function*() {
      const op = yield* reset
      for (const [credentials, method] of [[Clients.web, "basic"], [Clients.webPost, "post"]] as const) {
        const config = yield* discover(op, credentials, method)
        const tokens = yield* login(op, config, "alice", { redirectUri: "http://localhost:54321/signin-oidc" })
        assert.isString(tokens.refresh_token)
        const access = decode(tokens.access_token)
        assert.strictEqual(access.sub, "alice")
        assert.strictEqual(access.aud, Resources.demoApi)
        assert.strictEqual(access.client_id, credentials.clientId)
        assert.strictEqual(access.scope, "api.read api.write")
        assert.strictEqual(access.exp - access.iat, ACCESS_TOKEN_TTL)
        const id = tokens.claims()!
        assert.strictEqual(id.sub, "alice")
        assert.strictEqual(id.name, "alice")
        assert.strictEqual(id.email, "alice@example.test")
        assert.strictEqual(id.aud, credentials.clientId)
      }
      assert.strictEqual(yield* op.tokenRequests({ grantType: "authorization_code" }), 2)
    }))

  it.effect("authorize() with prompt=consent: consent granted automatically, offline_access kept", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const config = yield* discover(op, Clients.web)
      const implicitConsent = yield* login(op, config, "grace")
      const scopeOf = (token: string) => Effect.map(op.introspect(token), (r) => String(r.scope).split(" "))
      assert.notInclude(yield* scopeOf(implicitConsent.refresh_token!), "offline_access")

      const tokens = yield* login(op, config, "grace", { prompt: "consent" })
      assert.include(yield* scopeOf(tokens.refresh_token!), "offline_access")
      assert.strictEqual(decode(tokens.access_token).scope, "api.read api.write")
      const explicit = yield* login(op, config, "grace", {
        prompt: "login consent",
        resource: [Resources.demoApi, Resources.otherApi]
      })
      const refreshed = yield* Effect.promise(() =>
        client.refreshTokenGrant(config, explicit.refresh_token!, { resource: Resources.otherApi })
      )
      assert.strictEqual(decode(refreshed.access_token).aud, Resources.otherApi)
    }))

  it.effect("single sign-on: a second client in the same browser session gets consent without a login", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const web = yield* discover(op, Clients.web)
      const webPost = yield* discover(op, Clients.webPost, "post")
      const codeVerifier = client.randomPKCECodeVerifier()
      const codeChallenge = yield* Effect.promise(() => client.calculatePKCECodeChallenge(codeVerifier))
      const authorizationUrl = (config: client.Configuration) =>
        client.buildAuthorizationUrl(config, {
          redirect_uri: "http://127.0.0.1:3000/cb",
          scope: "openid api.read",
          code_challenge: codeChallenge,
          code_challenge_method: "S256",
          state: "st"
        })

      // a browser: one cookie jar (by name is enough here), redirects followed until they leave the provider
      const cookies = new Map<string, string>()
      const visits: Array<string> = []
      const browse = async (start: URL, form?: Record<string, string>): Promise<URL> => {
        let url = start
        let body = form
        for (;;) {
          visits.push(`${body === undefined ? "GET" : "POST"} ${url.pathname}`)
          const response = await fetch(url, {
            method: body === undefined ? "GET" : "POST",
            redirect: "manual",
            headers: {
              cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join("; "),
              ...(body === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" })
            },
            ...(body === undefined ? {} : { body: new URLSearchParams(body).toString() })
          })
          for (const header of response.headers.getSetCookie()) {
            const [name, value] = header.split(";")[0]!.split("=") as [string, string]
            cookies.set(name, value)
          }
          await response.arrayBuffer()
          const location = response.headers.get("location")
          if (location === null) return url
          url = new URL(location, url)
          body = undefined
          if (url.origin !== op.issuer) return url
        }
      }

      const loginPage = yield* Effect.promise(() => browse(authorizationUrl(web)))
      assert.match(loginPage.pathname, /^\/interaction\//)
      const first = yield* Effect.promise(() =>
        browse(new URL(`${loginPage.pathname}/login`, loginPage), { login: "henry", password: "pw" })
      )
      assert.isString(first.searchParams.get("code"))

      visits.length = 0
      const second = yield* Effect.promise(() => browse(authorizationUrl(webPost)))
      assert.strictEqual(second.origin, "http://127.0.0.1:3000")
      assert.isFalse(visits.some((visit) => visit.startsWith("POST")), "no login form was submitted")
      assert.isTrue(visits.some((visit) => /^GET \/interaction\//.test(visit)), "the consent interaction ran")
      const tokens = yield* Effect.promise(() =>
        client.authorizationCodeGrant(webPost, second, { pkceCodeVerifier: codeVerifier, expectedState: "st" })
      )
      assert.strictEqual(decode(tokens.access_token).sub, "henry")
      assert.strictEqual(decode(tokens.access_token).client_id, "web-post")
    }))

  it.effect("authorize() fails with AuthorizeError when the provider cannot complete the request", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const config = yield* discover(op, Clients.web)
      const badAccount = yield* Effect.flip(login(op, config, "not a valid id!"))
      assert.strictEqual(badAccount._tag, "AuthorizeError")
      assert.include(badAccount.message, "username")

      const foreignRedirect = yield* Effect.flip(login(op, config, "alice", { redirectUri: "https://evil.test/cb" }))
      assert.include(foreignRedirect.reason, "redirect_uri")

      const unknownClient = new URL(op.authorizationEndpoint)
      unknownClient.search = new URLSearchParams({
        client_id: "nobody",
        response_type: "code",
        redirect_uri: "http://127.0.0.1:3000/cb",
        scope: "openid"
      }).toString()
      const unknown = yield* Effect.flip(op.authorize(unknownClient, "alice"))
      assert.include(unknown.reason, "invalid_client")

      // without PKCE the provider refuses, through the (valid) redirect URI, as a browser would see it
      const noPkce = new URL(op.authorizationEndpoint)
      noPkce.search = new URLSearchParams({
        client_id: "web",
        response_type: "code",
        redirect_uri: "http://127.0.0.1:3000/cb",
        scope: "openid",
        state: "s1"
      }).toString()
      const refused = yield* op.authorize(noPkce, "alice")
      assert.strictEqual(refused.origin, "http://127.0.0.1:3000")
      assert.strictEqual(refused.searchParams.get("error"), "invalid_request")
      assert.strictEqual(refused.searchParams.get("state"), "s1")
    }))

  it.effect("refresh rotates the refresh token", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const config = yield* discover(op, Clients.web)
      const first = yield* login(op, config, "bob")
      const second = yield* Effect.promise(() => client.refreshTokenGrant(config, first.refresh_token!))
      assert.isString(second.refresh_token)
      assert.notStrictEqual(second.refresh_token, first.refresh_token)
      assert.notStrictEqual(second.access_token, first.access_token)
      assert.strictEqual(decode(second.access_token).sub, "bob")
      const third = yield* Effect.promise(() => client.refreshTokenGrant(config, second.refresh_token!))
      assert.notStrictEqual(third.refresh_token, second.refresh_token)
      assert.strictEqual(yield* op.tokenRequests({ grantType: "refresh_token", clientId: "web" }), 2)
    }))

  it.effect("reusing a consumed refresh token fails with invalid_grant and revokes the newer one too", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const config = yield* discover(op, Clients.web)
      const first = yield* login(op, config, "carol")
      const second = yield* Effect.promise(() => client.refreshTokenGrant(config, first.refresh_token!))
      assert.isTrue((yield* op.introspect(second.refresh_token!)).active)

      const reuse = yield* oauthError(() => client.refreshTokenGrant(config, first.refresh_token!))
      assert.strictEqual(reuse.error, "invalid_grant")
      assert.isFalse((yield* op.introspect(second.refresh_token!)).active, "the whole grant is revoked")
      const afterReuse = yield* oauthError(() => client.refreshTokenGrant(config, second.refresh_token!))
      assert.strictEqual(afterReuse.error, "invalid_grant")
    }))

  it.effect("refresh with resource gives per-resource access tokens from one refresh token chain", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const config = yield* discover(op, Clients.web)
      const tokens = yield* login(op, config, "dave")
      const other = yield* Effect.promise(() =>
        client.refreshTokenGrant(config, tokens.refresh_token!, { resource: Resources.otherApi })
      )
      const otherClaims = decode(other.access_token)
      assert.strictEqual(otherClaims.aud, Resources.otherApi)
      assert.strictEqual(otherClaims.scope, "other.read")
      assert.strictEqual(otherClaims.sub, "dave")
      const demo = yield* Effect.promise(() =>
        client.refreshTokenGrant(config, other.refresh_token!, { resource: Resources.demoApi })
      )
      assert.strictEqual(decode(demo.access_token).aud, Resources.demoApi)
      assert.strictEqual(decode(demo.access_token).scope, "api.read api.write")

      // a resource that was not part of the authorization is refused
      const narrow = yield* login(op, config, "dave", { scope: "openid offline_access api.read" })
      const refused = yield* oauthError(() =>
        client.refreshTokenGrant(config, narrow.refresh_token!, { resource: Resources.otherApi })
      )
      assert.strictEqual(refused.error, "invalid_target")
    }))

  it.effect("introspect: active tokens, inactive after revocation", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const config = yield* discover(op, Clients.web)
      const tokens = yield* login(op, config, "erin")
      const active = yield* op.introspect(tokens.refresh_token!)
      assert.isTrue(active.active)
      assert.strictEqual(active.sub, "erin")
      assert.strictEqual(active.client_id, "web")

      const access = yield* op.introspect(tokens.access_token)
      assert.isTrue(access.active)
      assert.strictEqual(access.sub, "erin")
      assert.strictEqual(access.aud, Resources.demoApi)

      yield* Effect.promise(() =>
        client.tokenRevocation(config, tokens.refresh_token!, { token_type_hint: "refresh_token" })
      )
      assert.isFalse((yield* op.introspect(tokens.refresh_token!)).active)
      assert.isFalse((yield* op.introspect("garbage")).active)
      assert.isFalse((yield* op.introspect(yield* op.mintAccessToken({ expiresIn: -5 }))).active)
    }))

  it.effect("RP-initiated logout accepts any loopback post_logout_redirect_uri", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const config = yield* discover(op, Clients.web)
      const tokens = yield* login(op, config, "frank")
      const endSession = (postLogoutRedirectUri: string) =>
        client.buildEndSessionUrl(config, {
          id_token_hint: tokens.id_token!,
          post_logout_redirect_uri: postLogoutRedirectUri,
          state: "bye"
        })
      const location = yield* Effect.promise(async () => {
        const page = await fetch(endSession("http://127.0.0.1:4567/signed-out"), { redirect: "manual" })
        const html = await page.text()
        const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1] ?? ""
        const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1] ?? ""
        const confirm = await fetch(new URL(action, op.issuer), {
          method: "POST",
          redirect: "manual",
          headers: {
            cookie: page.headers.getSetCookie().map((cookie) => cookie.split(";")[0]).join("; "),
            "content-type": "application/x-www-form-urlencoded"
          },
          body: new URLSearchParams({ xsrf, logout: "yes" }).toString()
        })
        return confirm.headers.get("location")
      })
      assert.strictEqual(location, "http://127.0.0.1:4567/signed-out?state=bye")
      const foreign = yield* Effect.promise(() =>
        fetch(endSession("https://elsewhere.test/"), { redirect: "manual" }).then((r) => r.status)
      )
      assert.strictEqual(foreign, 400)
    }))

  it.effect("authorize() signs in 200 users", () =>
    Effect.gen(function*() {
      const op = yield* reset
      const config = yield* discover(op, Clients.web)
      const subjects = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => `user-${i}`),
        (user) => Effect.map(login(op, config, user), (tokens) => decode(tokens.access_token).sub),
        { concurrency: 8 }
      )
      assert.deepStrictEqual(subjects, Array.from({ length: 200 }, (_, i) => `user-${i}`))
    }), 30_000)
})
