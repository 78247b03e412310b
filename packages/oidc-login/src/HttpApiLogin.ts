/**
 * The login for APIs built with `HttpApi` (@effect/platform): an `HttpApiMiddleware` whose security is the session
 * cookie and which provides `CurrentUser` to handlers, and error schemas that are safe to return — a status and a
 * short public message; the details (token endpoint, client id, the provider's description) go to the log only.
 *
 * @since 0.3.0
 */
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import { isSessionStoreError } from "@effect-atm/core/SessionStore"
import * as TokenError from "@effect-atm/core/TokenError"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import { isLoginError } from "./LoginError.js"
import { OidcLogin } from "./OidcLogin.js"

/**
 * 401: no session, a session that ended, or a user whose tokens are gone (`SignInRequired`). The body says which,
 * in public terms; a client signs the user in again (the `WWW-Authenticate` header is added by `wwwAuthenticate`).
 *
 * @since 0.3.0
 * @category errors
 */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()(
  "Unauthenticated",
  {
    error: Schema.Literal("unauthenticated", "invalid_session", "sign_in_required"),
    message: Schema.String
  },
  HttpApiSchema.annotations({ status: 401 })
) {}

/**
 * 503: the provider, or a store, is unavailable for now; the request may be retried later.
 *
 * @since 0.3.0
 * @category errors
 */
export class TemporarilyUnavailable extends Schema.TaggedError<TemporarilyUnavailable>()(
  "TemporarilyUnavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {}

/**
 * 500: something the caller cannot fix (e.g. a configuration error). The details are in the server's log.
 *
 * @since 0.3.0
 * @category errors
 */
export class InternalError extends Schema.TaggedError<InternalError>()(
  "InternalError",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 500 })
) {}

/**
 * Any of the errors that are safe to return.
 *
 * @since 0.3.0
 * @category errors
 */
export type PublicError = Unauthenticated | TemporarilyUnavailable | InternalError

const messages = {
  unauthenticated: "Sign in first.",
  invalid_session: "The session has ended (expired, signed out, or its cookie was refused); sign in again.",
  sign_in_required: "Sign in again: the access granted at sign-in has ended."
} as const

/**
 * The public form of an error of this library (a `TokenError`, a `LoginError`, a `SessionStoreError`): what may go
 * to an API caller. Anything else is left as it is.
 *
 * @since 0.3.0
 * @category errors
 */
export const toPublicError = <E>(error: E): E extends TokenError.TokenError ? PublicError : E | PublicError => {
  const tag = (error as { readonly _tag?: unknown })._tag
  if (TokenError.isSignInRequired(error) || tag === "NoCurrentUser") {
    return new Unauthenticated({
      error: tag === "NoCurrentUser" ? "unauthenticated" : "sign_in_required",
      message: tag === "NoCurrentUser" ? messages.unauthenticated : messages.sign_in_required
    }) as never
  }
  if (TokenError.isTokenError(error) || isLoginError(error) || isSessionStoreError(error)) {
    const transient = (error as { readonly transient?: unknown }).transient
    const unavailable = tag === "TokenEndpointUnavailable" || tag === "TokenEndpointTimeout" ||
      tag === "ProviderUnavailable" || tag === "SessionStoreError" ||
      ((tag === "TokenStoreError" || tag === "DiscoveryFailed") && transient !== false)
    return (unavailable
      ? new TemporarilyUnavailable({ message: "A service this request needs is unavailable; try again later." })
      : new InternalError({ message: "The request could not be completed; the error has been logged." })) as never
  }
  return error as never
}

/**
 * Turns the library's errors of a handler into `PublicError`s (declare them on the endpoint or group), logging
 * the details first: an API caller learns the status and a short message, never the token endpoint, the client id
 * or the provider's text.
 *
 * @example
 * ```ts
 * import { AccessTokenHttpClient, CurrentUser } from "@effect-atm/core"
 * import { HttpApiLogin } from "@effect-atm/oidc-login"
 * import { Effect } from "effect"
 *
 * declare const client: AccessTokenHttpClient.UserHttpClient
 *
 * // a handler that calls a downstream API with the user's token
 * const handler = Effect.gen(function*() {
 *   const user = yield* CurrentUser.CurrentUser
 *   const response = yield* client.get("/things")
 *   return { subject: user.subject, status: response.status }
 * }).pipe(HttpApiLogin.publicErrors)
 * ```
 *
 * @since 0.3.0
 * @category combinators
 */
export const publicErrors = <A, E, R>(
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, TokenError.TokenError> | PublicError, R> =>
  Effect.catchAll(self, (error): Effect.Effect<never, Exclude<E, TokenError.TokenError> | PublicError> => {
    const mapped = toPublicError(error)
    if (mapped === (error as unknown)) return Effect.fail(error as Exclude<E, TokenError.TokenError>)
    const message = (error as { readonly message?: unknown }).message
    return Effect.zipRight(
      // the details stay on the server (the messages of the library's errors never carry a secret)
      Effect.logWarning(`Request failed: ${typeof message === "string" ? message : String(error)}`),
      Effect.fail(mapped as PublicError)
    )
  })

/**
 * The security of `Authentication`: the session cookie (`atm_session`, the default name; the middleware reads the
 * cookie the login is configured with).
 *
 * @since 0.3.0
 * @category security
 */
export const sessionCookie: HttpApiSecurity.ApiKey = HttpApiSecurity.apiKey({ in: "cookie", key: "atm_session" })

/**
 * The middleware to add to `HttpApiGroup`s (or endpoints) that need a signed-in user: it provides `CurrentUser` to
 * their handlers, or answers `Unauthenticated` (401). Implemented by `layerAuthentication`.
 *
 * @example
 * ```ts
 * import { CurrentUser } from "@effect-atm/core"
 * import { HttpApiLogin } from "@effect-atm/oidc-login"
 * import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
 * import { Effect, Layer, Schema } from "effect"
 *
 * class Me extends HttpApiGroup.make("me")
 *   .add(HttpApiEndpoint.get("me", "/me").addSuccess(Schema.Struct({ subject: Schema.String })))
 *   .middleware(HttpApiLogin.Authentication)
 * {}
 * class Api extends HttpApi.make("api").add(Me) {}
 *
 * const MeLive = HttpApiBuilder.group(Api, "me", (handlers) =>
 *   handlers.handle("me", () => Effect.map(CurrentUser.CurrentUser, (user) => ({ subject: user.subject }))))
 *
 * const ApiLive = HttpApiBuilder.api(Api).pipe(
 *   Layer.provide(MeLive),
 *   Layer.provide(HttpApiLogin.layerAuthentication) // needs OidcLogin.layer
 * )
 * ```
 *
 * @since 0.3.0
 * @category middleware
 */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("@effect-atm/oidc-login/Authentication", {
  failure: Unauthenticated,
  provides: CurrentUser.CurrentUser,
  security: { session: sessionCookie }
}) {}

/**
 * `Authentication` over the `OidcLogin` in the context: the request's session cookie (signature first, then the
 * store) gives the `CurrentUser`. A store failure is a defect here: log it and answer 500 rather than tell the
 * caller.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerAuthentication: Layer.Layer<Authentication, never, OidcLogin> = Layer.effect(
  Authentication,
  Effect.map(OidcLogin, (login) =>
    Authentication.of({
      session: () =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => login.authenticate(request)).pipe(
          Effect.orDie,
          Effect.flatMap((auth) =>
            auth._tag === "Authenticated"
              ? Effect.succeed(auth.session.user)
              : Effect.fail(
                auth._tag === "Anonymous"
                  ? new Unauthenticated({ error: "unauthenticated", message: messages.unauthenticated })
                  : new Unauthenticated({ error: "invalid_session", message: messages.invalid_session })
              )
          )
        )
    }))
)

/**
 * The `WWW-Authenticate` header that a 401 must carry (RFC 9110 §11.6.1), added to every 401 answer that has none:
 * `Cookie realm="<origin>", login="<sign-in URL>"`. An `HttpMiddleware` for the whole app (e.g.
 * `HttpApiBuilder.serve(HttpApiLogin.wwwAuthenticate)` or `HttpServer.serve(app, HttpApiLogin.wwwAuthenticate)`):
 * error schemas of `HttpApi` cannot set headers, so it edits the response just before it is sent.
 *
 * @since 0.3.0
 * @category middleware
 */
export const wwwAuthenticate = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R> =>
  Effect.flatMap(Effect.serviceOption(OidcLogin), (login) => {
    const challenge = login._tag === "Some"
      ? `Cookie realm="${login.value.settings.origin}", login="${login.value.settings.loginPath}"`
      : `Cookie realm="app"`
    return Effect.zipRight(
      HttpApp.appendPreResponseHandler((_request, response) =>
        Effect.succeed(
          response.status !== 401 || response.headers["www-authenticate"] !== undefined
            ? response
            : HttpServerResponse.setHeader(response, "www-authenticate", challenge)
        )
      ),
      app
    )
  })
