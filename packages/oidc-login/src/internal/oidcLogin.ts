import { ClusterEvents, SessionEnded } from "@effect-atm/core/ClusterEvents"
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import * as DPoP from "@effect-atm/core/DPoP"
import { OidcEvents } from "@effect-atm/core/OidcEvents"
import { Session } from "@effect-atm/core/Session"
import { SessionStore } from "@effect-atm/core/SessionStore"
import { Grant, type ServerMetadata, TokenEndpoint } from "@effect-atm/core/TokenEndpoint"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Http from "node:http"
import * as oidc from "openid-client"
import {
  AuthorizationFailed,
  type CallbackError,
  CodeExchangeFailed,
  IdTokenRejected,
  InvalidAuthorizationResponse,
  LoginRequestNotFound,
  ProviderUnavailable,
  type SessionStoreError,
  StateMismatch
} from "../LoginError.js"
import type { Authentication, LoginOptions, OidcLogin, Options } from "../OidcLogin.js"
import * as BackchannelLogout from "./backchannelLogout.js"
import * as Pages from "./pages.js"
import * as PendingLogin from "./pendingLogin.js"
import { isLoopback, resolve } from "./settings.js"
import { randomId, sign, verify } from "./signedId.js"

/** ID token claims that describe the token, not the user: not kept in the session. */
const protocolClaims = new Set(["aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "s_hash", "jti", "azp"])

const site = "http://site.invalid"

/**
 * A path on this site, in the form a `Location` header accepts: one leading slash, no scheme, no protocol-relative
 * `//` or `/\`, no control characters; anything outside printable ASCII percent-encoded; and checked by Node's own
 * header validation, so that the callback never fails to answer after the tokens were stored. Anything else: `/`.
 */
export const safeReturnTo = (value: string | null | undefined): string => {
  if (typeof value !== "string" || value.length > 2048 || !/^\/(?![/\\])[^\u0000-\u001f\u007f]*$/.test(value)) {
    return "/"
  }
  try {
    // a lone surrogate cannot be encoded: refused
    const encoded = value.replace(/[^\x21-\x7e]/gu, (c) => encodeURIComponent(c))
    if (new URL(encoded, site).origin !== site) return "/"
    Http.validateHeaderValue("location", encoded)
    return encoded
  } catch {
    return "/"
  }
}

const describe = (cause: unknown): string => {
  if (cause instanceof Error) {
    const inner = (cause as { cause?: unknown }).cause
    const code = (inner as { code?: unknown } | undefined)?.code
    return typeof code === "string" ? `${cause.message} (${code})` : cause.message
  }
  return "unknown failure"
}

/** @internal */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const settings = yield* resolve(options)
    const endpoint = yield* TokenEndpoint
    const events = yield* OidcEvents
    const store = yield* SessionStore
    const bus = yield* ClusterEvents
    const { client } = settings
    const insecure = client.allowInsecureRequests || isLoopback(new URL(settings.issuer))

    const cookieOptions = { path: "/", httpOnly: true, secure: settings.secure, sameSite: "lax" } as const

    /** Live websocket connections (and other long-lived work) by session id, to end them at sign-out. */
    const connections = new Map<string, Set<Effect.Effect<void>>>()

    // ---- provider ------------------------------------------------------------------------------------------------

    const metadata: Effect.Effect<ServerMetadata, ProviderUnavailable> = endpoint.metadata(client).pipe(
      Effect.mapError((error) => new ProviderUnavailable({ operation: "discovery", reason: error.message }))
    )

    /** For the URLs openid-client builds (authorization, end session): no request is made with it. */
    const configuration = (server: ServerMetadata) => {
      const config = new oidc.Configuration(server as oidc.ServerMetadata, client.clientId)
      if (insecure) oidc.allowInsecureRequests(config)
      return config
    }

    // ---- sessions ------------------------------------------------------------------------------------------------

    const touchAfterMillis = Math.min(settings.idleTimeoutMillis / 10, 60_000)

    /** Loads a session and slides its idle deadline (written at most every `touchAfterMillis`). */
    const resume = (id: string): Effect.Effect<Option.Option<Session>, SessionStoreError> =>
      Effect.gen(function*() {
        // the store enforces expiry: an expired session is not returned (the sweeper revokes its tokens)
        const found = yield* store.get(id)
        if (Option.isNone(found)) return found
        const now = yield* Clock.currentTimeMillis
        const session = found.value
        if (now - session.lastSeenAt < touchAfterMillis) return found
        const touched = new Session({
          ...session,
          lastSeenAt: now,
          idleExpiresAt: Math.min(now + settings.idleTimeoutMillis, session.absoluteExpiresAt)
        })
        yield* store.set(touched)
        return Option.some(touched)
      })

    const authenticate = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<
      Authentication,
      SessionStoreError
    > =>
      Effect.suspend(() => {
        const cookie = request.cookies[settings.sessionCookie]
        if (cookie === undefined) return Effect.succeed({ _tag: "Anonymous" } as const)
        const id = verify(settings.secrets, "session", cookie)
        if (id === undefined) {
          return Effect.as(
            Effect.logWarning("Rejected a session cookie that fails its signature check"),
            { _tag: "Rejected", reason: "invalid-cookie" } as const
          )
        }
        return Effect.map(resume(id), (session): Authentication =>
          Option.isSome(session)
            ? { _tag: "Authenticated", session: session.value }
            : { _tag: "Rejected", reason: "expired" })
      })

    const closeConnections = (sessionId: string) =>
      Effect.suspend(() => {
        const closers = connections.get(sessionId)
        connections.delete(sessionId)
        return closers === undefined
          ? Effect.void
          : Effect.all([...closers], { concurrency: "unbounded", discard: true })
      })

    /** Revokes and clears a session's tokens; a failure is logged (the session is over either way). */
    const signOutTokens = (session: Session) =>
      events.signingOut(session.user).pipe(
        Effect.catchAll((error) => Effect.logWarning("Could not clear the tokens of a signed-out user", error.message))
      )

    /** Tells the other instances that a session ended: they close its connections. */
    const announceEnded = (id: string) =>
      bus.publish(new SessionEnded({ sessionId: id })).pipe(
        Effect.catchAll((error) =>
          Effect.logWarning(
            "Could not tell the other instances that a session ended; its connections there end at their next " +
              "session check",
            error.message
          )
        )
      )

    /**
     * Ends a session: out of the store, its connections closed here and on the other instances, its tokens revoked
     * and cleared — by whoever removed it from the store, so once across instances.
     */
    const endSession = (id: string): Effect.Effect<void, SessionStoreError> =>
      Effect.gen(function*() {
        const removed = yield* store.remove(id)
        // stop the session's connections first, so that none of them refreshes a token while it is revoked
        yield* closeConnections(id)
        yield* announceEnded(id)
        if (Option.isSome(removed)) yield* signOutTokens(removed.value)
      }).pipe(Effect.withSpan("OidcLogin.endSession"))

    /** Connections whose session is gone from the store: after a lost bus subscription, events may be missed. */
    const closeOrphans = Effect.gen(function*() {
      for (const id of [...connections.keys()]) {
        if (Option.isNone(yield* store.get(id))) yield* closeConnections(id)
      }
    })

    // sessions ended on other instances: their connections here close within the bus's latency
    const deliveries = yield* bus.subscribe
    yield* Queue.take(deliveries).pipe(
      Effect.flatMap(({ event, local }) =>
        event._tag === "SessionEnded" && !local
          ? closeConnections(event.sessionId)
          : event._tag === "Resubscribed"
          ? closeOrphans
          : Effect.void
      ),
      Effect.catchAll((error) => Effect.logWarning("Could not check the connections' sessions", error.message)),
      Effect.forever,
      Effect.forkScoped
    )

    /** Sessions past their idle or absolute deadline: their connections closed, their tokens revoked and cleared. */
    const sweepExpired: Effect.Effect<number, SessionStoreError> = Effect.gen(function*() {
      let ended = 0
      while (true) {
        const expired = yield* store.takeExpired(100)
        for (const session of expired) {
          yield* closeConnections(session.id)
          yield* announceEnded(session.id)
          yield* signOutTokens(session)
        }
        ended += expired.length
        if (expired.length < 100) return ended
      }
    }).pipe(Effect.withSpan("OidcLogin.sweepExpired"))

    yield* Effect.sleep(settings.sweepIntervalMillis).pipe(
      Effect.zipRight(sweepExpired),
      Effect.catchAll((error) => Effect.logWarning("Could not end expired sessions", error.message)),
      Effect.forever,
      Effect.forkScoped
    )

    const backchannelLogout = BackchannelLogout.make({
      issuer: settings.issuer,
      clientId: client.clientId,
      metadata,
      // the provider session's sessions here (of its subject, when both are named); all of the subject's without sid
      sessionsOf: ({ sid, sub }) =>
        sid !== undefined
          ? Effect.map(
            store.findByProviderSession(sid),
            (sessions) => sub === undefined ? sessions : sessions.filter((session) => session.subject === sub)
          )
          : store.findBySubject(sub!),
      endSession,
      claimOnce: store.claimOnce,
      releaseClaim: store.releaseClaim
    })

    const runConnection: OidcLogin["Type"]["runConnection"] = (session, effect, connectionOptions) =>
      Effect.scoped(Effect.gen(function*() {
        const fiber = yield* Effect.forkScoped(CurrentUser.provide(effect, session.user))
        let ended = false
        const end = Effect.suspend(() => {
          if (ended) return Effect.void
          ended = true
          return (connectionOptions?.onEnd ?? Effect.void).pipe(
            Effect.timeout("1 second"),
            Effect.ignore,
            Effect.zipRight(Fiber.interrupt(fiber)),
            Effect.asVoid
          )
        })
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            let set = connections.get(session.id)
            if (set === undefined) connections.set(session.id, set = new Set())
            set.add(end)
          }),
          () =>
            Effect.sync(() => {
              const set = connections.get(session.id)
              set?.delete(end)
              if (set?.size === 0) connections.delete(session.id)
            })
        )
        // a session ended elsewhere (another instance, expiry) ends the connection at the next check; an open
        // connection counts as use, so it slides the idle deadline, never the absolute one
        yield* Effect.sleep(settings.connectionCheckMillis).pipe(
          Effect.zipRight(resume(session.id)),
          Effect.flatMap((current) => Option.isNone(current) ? end : Effect.void),
          Effect.catchAll((error) => Effect.logWarning("Could not check a connection's session", error.message)),
          Effect.forever,
          Effect.forkScoped
        )
        const exit = yield* Fiber.await(fiber)
        // ended by the session: a normal end for whoever awaits the connection
        yield* Exit.isFailure(exit) && !Exit.isInterrupted(exit) ? Effect.asVoid(exit) : Effect.void
      }))

    // ---- routes --------------------------------------------------------------------------------------------------

    const loginUrl = (returnTo?: string) =>
      returnTo === undefined || safeReturnTo(returnTo) === "/"
        ? settings.loginPath
        : `${settings.loginPath}?returnTo=${encodeURIComponent(safeReturnTo(returnTo))}`

    const login = (loginOptions?: LoginOptions) =>
      Effect.gen(function*() {
        const server = yield* metadata
        const now = yield* Clock.currentTimeMillis
        const codeVerifier = oidc.randomPKCECodeVerifier()
        const codeChallenge = yield* Effect.promise(() => oidc.calculatePKCECodeChallenge(codeVerifier))
        const resource = loginOptions?.resource ?? settings.resource
        const pending: PendingLogin.PendingLogin = {
          state: oidc.randomState(),
          nonce: Redacted.make(oidc.randomNonce()),
          codeVerifier: Redacted.make(codeVerifier),
          returnTo: safeReturnTo(loginOptions?.returnTo),
          ...(resource === undefined ? {} : { resource }),
          expiresAt: now + settings.loginTimeoutMillis
        }
        const url = yield* Effect.try({
          try: () =>
            oidc.buildAuthorizationUrl(configuration(server), {
              ...settings.parameters,
              ...loginOptions?.parameters,
              redirect_uri: settings.redirectUri,
              scope: loginOptions?.scope ?? settings.scope,
              state: pending.state,
              nonce: Redacted.value(pending.nonce),
              code_challenge: codeChallenge,
              code_challenge_method: "S256",
              ...(resource === undefined ? {} : { resource })
            }),
          catch: (cause) => new ProviderUnavailable({ operation: "discovery", reason: describe(cause) })
        })
        // nothing is stored: the sign-in in progress is sealed in the pre-login cookie
        return HttpServerResponse.redirect(url, { status: 302, headers: { "cache-control": "no-store" } }).pipe(
          HttpServerResponse.unsafeSetCookie(
            settings.loginCookie,
            PendingLogin.seal(settings.secrets[0]!, settings.loginCookie, pending),
            {
              ...cookieOptions,
              maxAge: `${settings.loginTimeoutMillis} millis`
            }
          )
        )
      }).pipe(Effect.withSpan("OidcLogin.login"))

    /**
     * The code exchange, an `authorization_code` grant of `TokenEndpoint`: over the application's `HttpClient`, with
     * its timeout and response-size bound; openid-client checks the response and the ID token (nonce, PKCE, iss).
     */
    const exchange = (
      currentUrl: URL,
      pending: PendingLogin.PendingLogin,
      dpopKey: Redacted.Redacted<string> | undefined
    ) =>
      endpoint.request(
        client,
        Grant.AuthorizationCode({
          callbackUrl: currentUrl,
          codeVerifier: pending.codeVerifier,
          expectedState: pending.state,
          expectedNonce: pending.nonce,
          options: pending.resource === undefined ? undefined : { resource: pending.resource },
          dpopKey
        })
      ).pipe(
        Effect.mapError((error): CallbackError => {
          switch (error._tag) {
            case "TokenRequestRejected":
              return new CodeExchangeFailed({
                status: error.status,
                error: error.error,
                ...(error.errorDescription ? { errorDescription: error.errorDescription } : {})
              })
            case "InvalidTokenResponse":
              return new IdTokenRejected({ reason: error.reason })
            case "TokenEndpointTimeout":
              return new ProviderUnavailable({
                operation: "authorization_code",
                reason: `no answer within ${error.timeoutMillis} ms`
              })
            case "TokenEndpointUnavailable":
              return new ProviderUnavailable({ operation: "authorization_code", reason: error.reason })
            case "DiscoveryFailed":
              return new ProviderUnavailable({ operation: "discovery", reason: error.reason })
          }
        }),
        Effect.timeoutFail({
          duration: settings.timeoutMillis,
          onTimeout: () =>
            new ProviderUnavailable({
              operation: "authorization_code",
              reason: `no answer within ${settings.timeoutMillis} ms`
            })
        })
      )

    /** The authorization response's own verdict, before any request: an error, or another issuer (RFC 9207). */
    const checkAuthorizationResponse = (server: ServerMetadata, params: URLSearchParams) => {
      const error = params.get("error")
      if (error !== null) {
        const description = params.get("error_description")
        return Effect.fail(
          new AuthorizationFailed({ error, ...(description ? { errorDescription: description } : {}) })
        )
      }
      const iss = params.get("iss")
      if (iss !== null ? iss !== server.issuer : server.authorization_response_iss_parameter_supported === true) {
        return Effect.fail(
          new InvalidAuthorizationResponse({
            reason: iss === null ? "the issuer (iss) is missing" : "it comes from another issuer (iss)"
          })
        )
      }
      if (params.get("code") === null) {
        return Effect.fail(new InvalidAuthorizationResponse({ reason: "it has no code" }))
      }
      return Effect.void
    }

    const callback = (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const cookie = request.cookies[settings.loginCookie]
        if (cookie === undefined) return yield* new LoginRequestNotFound({ reason: "missing-cookie" })
        const opened = PendingLogin.open(settings.secrets, settings.loginCookie, cookie, yield* Clock.currentTimeMillis)
        if (typeof opened === "string") return yield* new LoginRequestNotFound({ reason: opened })
        // the cookie is expired by every answer of the callback (see `router`), so it is used once; a replayed code
        // is refused by the provider
        const pending = { value: opened }
        const query = request.url.indexOf("?") === -1 ? "" : request.url.slice(request.url.indexOf("?"))
        const params = new URLSearchParams(query)
        const state = params.get("state")
        if (state !== pending.value.state) return yield* new StateMismatch({ missing: state === null })

        const currentUrl = new URL(settings.redirectUri)
        currentUrl.search = query
        // where the browser goes afterwards, checked before anything is stored (sealed at login, checked again)
        const returnTo = safeReturnTo(pending.value.returnTo)
        const server = yield* metadata
        yield* checkAuthorizationResponse(server, params)
        // with DPoP, the session's proof key is made here: a public client's refresh token is bound to it
        const dpopAlgorithm = DPoP.algorithmOf(client.dpop)
        const dpopKey = dpopAlgorithm === undefined ? undefined : yield* DPoP.generateKey(dpopAlgorithm)
        const tokens = yield* exchange(currentUrl, pending.value, dpopKey)
        const claims = tokens.idTokenClaims as oidc.IDToken | undefined
        if (claims === undefined || tokens.idToken === undefined) {
          return yield* new IdTokenRejected({ reason: "the token response has no ID token" })
        }

        const now = yield* Clock.currentTimeMillis
        const session = new Session({
          id: randomId(),
          subject: claims.sub,
          claims: Object.fromEntries(Object.entries(claims).filter(([name]) => !protocolClaims.has(name))),
          idToken: tokens.idToken,
          createdAt: now,
          lastSeenAt: now,
          idleExpiresAt: Math.min(now + settings.idleTimeoutMillis, now + settings.absoluteTimeoutMillis),
          absoluteExpiresAt: now + settings.absoluteTimeoutMillis
        })
        // the seed of the user's token store (OnTokenValidated): the session id keys the tokens
        yield* events.tokenValidated(
          session.user,
          {
            access_token: Redacted.value(tokens.accessToken.accessToken),
            token_type: tokens.accessToken.tokenType,
            // what remains of the lifetime counted from when the code exchange was sent
            expires_in: Math.max(1, Math.floor((tokens.accessToken.expiresAt - now) / 1000)),
            refresh_token: tokens.refreshToken === undefined ? undefined : Redacted.value(tokens.refreshToken),
            id_token: Redacted.value(tokens.idToken),
            scope: tokens.accessToken.scope
          },
          pending.value.resource === undefined ? undefined : { resource: pending.value.resource },
          { dpopKey }
        )
        yield* store.set(session).pipe(
          Effect.tapError(() => Effect.ignore(events.signingOut(session.user)))
        )
        // a new session id at every sign-in (no fixation); the browser's previous session, if any, ends
        const previous = request.cookies[settings.sessionCookie]
        const previousId = previous === undefined ? undefined : verify(settings.secrets, "session", previous)
        if (previousId !== undefined) {
          yield* endSession(previousId).pipe(
            Effect.catchAll((error) => Effect.logWarning("Could not end the previous session", error.message))
          )
        }
        return HttpServerResponse.redirect(returnTo, {
          status: 303,
          headers: { "cache-control": "no-store" }
        }).pipe(
          HttpServerResponse.unsafeSetCookie(
            settings.sessionCookie,
            sign(settings.secrets[0]!, "session", session.id),
            {
              ...cookieOptions
            }
          ),
          HttpServerResponse.expireCookie(settings.loginCookie, cookieOptions)
        )
      }).pipe(Effect.withSpan("OidcLogin.callback"))

    const isSameOrigin = (request: HttpServerRequest.HttpServerRequest): boolean => {
      const origin = request.headers["origin"]
      return origin === undefined || origin === settings.origin
    }

    const logout = (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const auth = yield* authenticate(request)
        let location = settings.postLogoutRedirectUri
        if (auth._tag === "Authenticated") {
          const { session } = auth
          yield* endSession(session.id)
          // RP-initiated logout, when the provider has an end-session endpoint (discovery failures skip it)
          const server = yield* Effect.option(metadata)
          if (Option.isSome(server) && typeof server.value.end_session_endpoint === "string") {
            // the ID token passes through the browser with id_token_hint; logout_hint sends none (see Options)
            const hint = settings.endSessionHint === "logout_hint" || session.idToken === undefined
              ? { client_id: client.clientId, logout_hint: session.subject }
              : { id_token_hint: Redacted.value(session.idToken) }
            location = oidc.buildEndSessionUrl(configuration(server.value), {
              post_logout_redirect_uri: settings.postLogoutRedirectUri,
              ...hint
            }).href
          }
        }
        return HttpServerResponse.redirect(location, { status: 303, headers: { "cache-control": "no-store" } }).pipe(
          HttpServerResponse.expireCookie(settings.sessionCookie, cookieOptions)
        )
      }).pipe(Effect.withSpan("OidcLogin.logout"))

    const pageHeaders = {
      "cache-control": "no-store",
      "content-security-policy": Pages.contentSecurityPolicy(settings.issuer)
    }

    const errorResponse = (error: { readonly _tag: string; readonly message: string; readonly httpStatus?: number }) =>
      HttpServerResponse.html(Pages.errorPage({
        title: error._tag === "AuthorizationFailed" ? "Sign-in cancelled or refused" : "Sign-in failed",
        message: error.message,
        tag: error._tag,
        loginUrl: settings.loginPath,
        homeUrl: new URL(settings.postLogoutRedirectUri).pathname
      })).pipe(
        HttpServerResponse.setStatus(error.httpStatus ?? 500),
        HttpServerResponse.setHeaders(pageHeaders)
      )

    const signOutPage = HttpServerResponse.html(Pages.signOutPage({
      action: settings.logoutPath,
      homeUrl: new URL(settings.postLogoutRedirectUri).pathname
    })).pipe(HttpServerResponse.setHeaders(pageHeaders))

    const { secrets: _, ...publicSettings } = settings
    const service: OidcLogin["Type"] = {
      settings: publicSettings,
      authenticate,
      sessionFromCookie: (value) => {
        const id = verify(settings.secrets, "session", value)
        return id === undefined ? Effect.succeed(Option.none()) : store.get(id)
      },
      login,
      callback,
      logout,
      endSession,
      backchannelLogout,
      sweepExpired,
      runConnection,
      connectionsOf: (sessionId) => Effect.sync(() => connections.get(sessionId)?.size ?? 0),
      connections: Effect.sync(() => {
        let count = 0
        for (const set of connections.values()) count += set.size
        return count
      }),
      loginUrl,
      isSameOrigin,
      errorResponse,
      signOutPage,
      cookieOptions
    }
    return service
  })
