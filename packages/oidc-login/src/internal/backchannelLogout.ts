import type { Session } from "@effect-atm/core/Session"
import type { SessionStoreError } from "@effect-atm/core/SessionStore"
import type { ServerMetadata } from "@effect-atm/core/TokenEndpoint"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as UrlParams from "@effect/platform/UrlParams"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as jose from "jose"
import type { ProviderUnavailable } from "../LoginError.js"

/** The `events` member that makes a JWT a logout token (OpenID Connect Back-Channel Logout 1.0, 2.4). */
const logoutEvent = "http://schemas.openid.net/event/backchannel-logout"

/** A logout token older than this (by `iat`) is refused: it bounds how long a `jti` is remembered. */
const maxAgeSeconds = 120
/** Clock skew tolerated between the provider and this server. */
const skewSeconds = 30

/** Why a logout token is refused: logged, and said to the provider in the 400 answer. */
class Refused extends Data.TaggedError("Refused")<{ readonly reason: string }> {}

/** @internal */
export interface Dependencies {
  readonly issuer: string
  readonly clientId: string
  readonly metadata: Effect.Effect<ServerMetadata, ProviderUnavailable>
  readonly sessionsOf: (
    claims: { readonly sid: string | undefined; readonly sub: string | undefined }
  ) => Effect.Effect<ReadonlyArray<Session>, SessionStoreError>
  readonly endSession: (id: string) => Effect.Effect<void, SessionStoreError>
  /** `SessionStore.claimOnce`: shared by the instances, so that a token replayed to another is refused too */
  readonly claimOnce: (key: string, until: number) => Effect.Effect<boolean, SessionStoreError>
  /** `SessionStore.releaseClaim`: gives back the `jti` of a logout that did not end its sessions */
  readonly releaseClaim: (key: string, until: number) => Effect.Effect<void, SessionStoreError>
}

const answer = (status: number, body?: { readonly error: string; readonly error_description: string }) =>
  (body === undefined ? HttpServerResponse.empty({ status }) : HttpServerResponse.unsafeJson(body, { status })).pipe(
    HttpServerResponse.setHeader("cache-control", "no-store")
  )

/**
 * The receiver of back-channel logout requests: validates the logout token (signature by the provider's JWKS,
 * `iss`, `aud`, `iat`, the logout event, no `nonce`, a `sid` or `sub`, a `jti` not seen before by any instance
 * sharing the session store), then ends every session of the `sid` (or of the `sub`, when the token names no
 * `sid`). The `jti` is claimed before any session is ended (a replayed token naming a `sub` would otherwise end
 * that user's newer sessions) and given back when they could not all be ended, so that the provider's retry of
 * the token (after the 500) is accepted.
 *
 * @internal
 */
export const make = (deps: Dependencies) => {
  let keys: { readonly uri: string; readonly get: jose.JWTVerifyGetKey } | undefined

  const keySet = (server: ServerMetadata) => {
    const uri = server["jwks_uri"]
    if (typeof uri !== "string") return Effect.fail(new Refused({ reason: "the provider publishes no jwks_uri" }))
    if (keys?.uri !== uri) keys = { uri, get: jose.createRemoteJWKSet(new URL(uri)) }
    return Effect.succeed(keys.get)
  }

  const validate = (token: string) =>
    Effect.gen(function*() {
      const server = yield* deps.metadata
      const getKey = yield* keySet(server)
      const now = yield* Clock.currentTimeMillis
      const { payload, protectedHeader } = yield* Effect.tryPromise({
        try: () =>
          jose.jwtVerify(token, getKey, {
            issuer: deps.issuer,
            audience: deps.clientId,
            maxTokenAge: maxAgeSeconds,
            clockTolerance: skewSeconds,
            requiredClaims: ["iat", "jti", "events"],
            currentDate: new Date(now)
          }),
        catch: (error) =>
          new Refused({
            reason: error instanceof Error ? `the logout token is not valid: ${error.message}` : "invalid token"
          })
      })
      // explicit typing is recommended (2.4); a token typed as something else is not a logout token
      if (protectedHeader.typ !== undefined && protectedHeader.typ.toLowerCase() !== "logout+jwt") {
        return yield* new Refused({ reason: `the logout token's typ is ${protectedHeader.typ}` })
      }
      const events = payload["events"]
      if (
        typeof events !== "object" || events === null ||
        typeof (events as Record<string, unknown>)[logoutEvent] !== "object"
      ) {
        return yield* new Refused({ reason: "the logout token has no back-channel logout event" })
      }
      if (payload["nonce"] !== undefined) {
        return yield* new Refused({ reason: "a logout token must not contain a nonce" })
      }
      const sid = typeof payload["sid"] === "string" && payload["sid"] !== "" ? payload["sid"] : undefined
      const sub = typeof payload.sub === "string" && payload.sub !== "" ? payload.sub : undefined
      if (sid === undefined && sub === undefined) {
        return yield* new Refused({ reason: "the logout token names no sid or sub" })
      }
      // checked last, so that an invalid token never uses up its jti; kept until no token with this iat could
      // pass the age check any more
      const claim = {
        key: `backchannel-logout:${deps.issuer}:${payload.jti}`,
        until: now + (maxAgeSeconds + 2 * skewSeconds) * 1000
      }
      const fresh = typeof payload.jti === "string" && (yield* deps.claimOnce(claim.key, claim.until))
      if (!fresh) return yield* new Refused({ reason: "the logout token was already used (jti)" })
      return { sid, sub, claim }
    })

  return (request: HttpServerRequest.HttpServerRequest): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
    Effect.gen(function*() {
      const body = yield* Effect.mapError(
        request.urlParamsBody,
        () => new Refused({ reason: "the body is not a form" })
      )
      const token = Option.getOrUndefined(UrlParams.getFirst(body, "logout_token"))
      if (token === undefined) return yield* new Refused({ reason: "no logout_token" })
      const { claim, ...claims } = yield* validate(token)
      const sessions = yield* Effect.gen(function*() {
        const sessions = yield* deps.sessionsOf(claims)
        yield* Effect.forEach(sessions, (session) => deps.endSession(session.id), { discard: true })
        return sessions
      }).pipe(
        // failed, died or interrupted: the logout did not happen (or only in part), so its retry must not be
        // refused as a replay; ending a session twice is harmless, a retry finds only those left
        Effect.onError(() =>
          deps.releaseClaim(claim.key, claim.until).pipe(
            Effect.catchAll((error) =>
              Effect.logWarning(
                `Could not release the jti of a failed back-channel logout (its retry will be refused): ${error.message}`
              )
            )
          )
        )
      )
      yield* Effect.logInfo(`Back-channel logout ended ${sessions.length} session(s)`)
      return answer(200)
    }).pipe(
      Effect.catchAll((error) =>
        error._tag === "Refused"
          ? Effect.as(
            Effect.logWarning(`Refused a back-channel logout: ${error.reason}`),
            answer(400, { error: "invalid_request", error_description: error.reason })
          )
          : error._tag === "ProviderUnavailable"
          ? Effect.as(
            Effect.logWarning(`Could not check a back-channel logout: ${error.message}`),
            answer(503, { error: "temporarily_unavailable", error_description: "the provider's keys are unavailable" })
          )
          : Effect.as(
            Effect.logWarning(`Could not end the sessions of a back-channel logout: ${error.message}`),
            answer(500, { error: "server_error", error_description: "the sessions could not be ended" })
          )
      ),
      Effect.withSpan("OidcLogin.backchannelLogout")
    )
}
