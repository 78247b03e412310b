/**
 * Token-attaching HTTP clients: the middleware that puts a token on each request and, when the API answers 401,
 * replaces that token once and retries once; and layers that declare named clients (their own Context Tags) for
 * client-credentials tokens (`layerClientCredentials`) and for the current user's tokens (`layerUser`,
 * `layerCurrentUser`).
 *
 * @example
 * ```ts
 * import { AccessTokenHttpClient } from "@effect-atm/core"
 * import { Context } from "effect"
 *
 * class CatalogApi extends Context.Tag("CatalogApi")<CatalogApi, AccessTokenHttpClient.ClientCredentialsHttpClient>() {}
 *
 * const CatalogApiLive = AccessTokenHttpClient.layerClientCredentials(CatalogApi, {
 *   client: "catalog",
 *   baseUrl: "https://catalog.example.com"
 * })
 * // yield* CatalogApi then `.get("/items")`: the token is attached, renewed and retried for you
 * ```
 *
 * @since 0.1.0
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import { type AccessToken, authorization, type TokenRequestOptions } from "./AccessToken.js"
import { type ClientCredentialsTokenError, ClientCredentialsTokens } from "./ClientCredentialsTokens.js"
import { CurrentUser } from "./CurrentUser.js"
import * as dpop from "./internal/dpop.js"
import { InlineHit } from "./internal/inlineHit.js"
import * as tokenMetrics from "./internal/tokenMetrics.js"
import { errorWithoutToken, ResponseWithoutToken, withoutCredentials } from "./internal/withoutToken.js"
import * as MutualTls from "./MutualTls.js"
import type { NoCurrentUser } from "./TokenError.js"
import { TokenExchange, type TokenExchangeError } from "./TokenExchange.js"
import * as TokenMetrics from "./TokenMetrics.js"
import { type UserTokenError, UserTokens } from "./UserTokens.js"

/**
 * Where the middleware gets a token from, and how it replaces one the API rejected.
 *
 * @since 0.1.0
 * @category models
 */
export interface TokenSource<E, R> {
  readonly get: Effect.Effect<AccessToken, E, R>
  /** Replaces `rejected` (or returns the token that already replaced it). */
  readonly renew: (rejected: AccessToken) => Effect.Effect<AccessToken, E, R>
  /**
   * The source for requests that ask for token parameters of their own (`withTokenParameters`): the given ones
   * override the source's, each is part of the token's cache key. A source without it ignores such requests'
   * parameters.
   *
   * @since 0.3.0
   */
  readonly withParameters?: ((parameters: TokenRequestOptions) => TokenSource<E, R>) | undefined
}

/**
 * The token parameters the current request asks for, set by `withTokenParameters`.
 *
 * @since 0.3.0
 * @category references
 */
export class CurrentTokenParameters extends Context.Reference<CurrentTokenParameters>()(
  "@effect-atm/core/AccessTokenHttpClient/CurrentTokenParameters",
  { defaultValue: (): TokenRequestOptions | undefined => undefined }
) {}

/**
 * Makes the requests of a token-attaching client ask for a token with parameters of their own — a narrower
 * scope, another resource, extra form parameters — instead of the named client's defaults (each given field
 * overrides the default one; `parameters` are merged). Tokens for different parameters are cached apart. Apply it
 * to the client for a call site, or to one request's effect with `Effect.provideService(CurrentTokenParameters,
 * …)`.
 *
 * @example
 * ```ts
 * import { AccessTokenHttpClient } from "@effect-atm/core"
 * import { Context, Effect } from "effect"
 *
 * class CatalogApi extends Context.Tag("CatalogApi")<CatalogApi, AccessTokenHttpClient.ClientCredentialsHttpClient>() {}
 *
 * // this call needs a token with the catalog.write scope; the client's other calls keep their default token
 * const addItem = Effect.gen(function*() {
 *   const api = (yield* CatalogApi).pipe(AccessTokenHttpClient.withTokenParameters({ scope: "catalog.write" }))
 *   return yield* api.post("/items")
 * })
 * ```
 *
 * @since 0.3.0
 * @category combinators
 */
export const withTokenParameters: {
  (parameters: TokenRequestOptions): <Client extends HttpClient.HttpClient.With<any, any>>(self: Client) => Client
  <Client extends HttpClient.HttpClient.With<any, any>>(self: Client, parameters: TokenRequestOptions): Client
} = dual(
  2,
  <Client extends HttpClient.HttpClient.With<any, any>>(self: Client, parameters: TokenRequestOptions): Client =>
    HttpClient.transform(self, (effect) => Effect.provideService(effect, CurrentTokenParameters, parameters)) as Client
)

const mergeParameters = (
  defaults: TokenRequestOptions | undefined,
  request: TokenRequestOptions
): TokenRequestOptions => ({
  scope: request.scope ?? defaults?.scope,
  resource: request.resource ?? defaults?.resource,
  parameters: defaults?.parameters === undefined && request.parameters === undefined
    ? undefined
    : { ...defaults?.parameters, ...request.parameters }
})

/**
 * Attaches a token from `source` to every request (`Authorization: <token_type> <token>`). A 401 answer makes it
 * replace that token — only if it is still the current one — and retry the request once; a second 401 is
 * returned as it is. Requests with a streaming body cannot be replayed: give such requests a buffered body.
 *
 * A DPoP-bound token (`tokenType: "DPoP"` with its `dpopKey`) goes with a fresh DPoP proof per request (`htm`,
 * `htu`, `iat`, `jti`, `ath`, and the API's last nonce for the origin). A 401 challenge
 * `WWW-Authenticate: DPoP error="use_dpop_nonce"` with a `DPoP-Nonce` is answered with exactly one retry under the
 * new nonce, which is remembered for the origin.
 *
 * Responses and `HttpClientError`s come back carrying the request as the caller made it, without the
 * `Authorization` and `DPoP` headers: logging or serializing them never shows the token or a proof.
 *
 * The named client layers use it; use it directly for a client you build yourself.
 *
 * @example
 * ```ts
 * import { AccessTokenHttpClient, ClientCredentialsTokens } from "@effect-atm/core"
 * import { HttpClient } from "@effect/platform"
 * import { Effect } from "effect"
 *
 * // a client for one call site, with the token of the "reports" client and a scope of its own
 * const exportReport = Effect.gen(function*() {
 *   const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
 *   const client = (yield* HttpClient.HttpClient).pipe(
 *     AccessTokenHttpClient.withAccessToken(
 *       AccessTokenHttpClient.clientCredentialsSource(tokens, "reports", { scope: "reports.export" })
 *     )
 *   )
 *   return yield* client.post("https://reports.example.com/exports")
 * })
 * ```
 *
 * @since 0.1.0
 * @category middleware
 */
export const withAccessToken: {
  <E2, R2>(
    source: TokenSource<E2, R2>
  ): <E, R>(self: HttpClient.HttpClient.With<E, R>) => HttpClient.HttpClient.With<E | E2, R | R2>
  <E, R, E2, R2>(
    self: HttpClient.HttpClient.With<E, R>,
    source: TokenSource<E2, R2>
  ): HttpClient.HttpClient.With<E | E2, R | R2>
} = dual(2, <E, R, E2, R2>(self: HttpClient.HttpClient.With<E, R>, source: TokenSource<E2, R2>) => {
  // the APIs' DPoP nonces, per origin
  const nonces = new dpop.Nonces()
  /** One request with a proof; a nonce challenge is answered once, with a new proof under the new nonce. */
  const sendWithProof = (
    request: HttpClientRequest.HttpClientRequest,
    token: AccessToken,
    key: Redacted.Redacted<string>
  ) => {
    const proofKey = dpop.load(key)
    // One step per attempt, on the request's path: the time is read from the fiber's Clock (TestClock in tests)
    // directly rather than through `Clock.currentTimeMillis` and a `flatMap`, and the redacted names likewise.
    const attempt = Effect.withFiberRuntime<HttpClientResponse.HttpClientResponse, E, R>((fiber) => {
      const now = Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()
      // the client's span records request headers: the proof is redacted there like the Authorization header
      return Effect.locally(
        self.execute(
          HttpClientRequest.setHeaders(request, {
            authorization: authorization(token),
            dpop: dpop.proof(proofKey, {
              htm: request.method,
              htu: request.url,
              iat: Math.floor(now / 1000),
              ath: dpop.athOfToken(token.accessToken),
              nonce: nonces.get(request.url)
            })
          })
        ),
        Headers.currentRedactedNames,
        withDPoPRedacted(fiber.getFiberRef(Headers.currentRedactedNames))
      )
    })
    const remember = (response: HttpClientResponse.HttpClientResponse) =>
      nonces.set(request.url, response.headers["dpop-nonce"])
    // the nonce remembered and the challenge recognized in the same step, from one read of the headers (an
    // undici response converts them on every read)
    return Effect.flatMap(attempt, (response) => {
      const headers = response.headers
      const nonce = headers["dpop-nonce"]
      nonces.set(request.url, nonce)
      return response.status === 401 && nonce !== undefined && dpop.isNonceChallenge(headers["www-authenticate"])
        ? Effect.zipRight(Effect.ignore(response.arrayBuffer), Effect.tap(attempt, remember))
        : Effect.succeed(response)
    })
  }
  const attach = (request: HttpClientRequest.HttpClientRequest, token: AccessToken) =>
    token.tokenType === "DPoP" && token.dpopKey !== undefined
      ? sendWithProof(request, token, token.dpopKey)
      : self.execute(HttpClientRequest.setHeader(request, "authorization", authorization(token)))
  // What the middleware hands back — responses, and errors carrying a request — never holds the token it added.
  // This runs on every request: its callbacks are arguments, not an options object, whose functions a
  // name-keeping transpiler (tsx, esbuild's keepNames) would rename on every call.
  const send = <A, E3, R3>(
    request: HttpClientRequest.HttpClientRequest,
    token: AccessToken,
    onResponse: (response: ResponseWithoutToken) => Effect.Effect<A, E3, R3>
  ) =>
    Effect.flatMap(
      Effect.mapError(attach(request, token), (error) => errorWithoutToken(error, request)),
      (response) => onResponse(new ResponseWithoutToken(response, request))
    )
  const sourceFor = (parameters: TokenRequestOptions | undefined) =>
    parameters === undefined || source.withParameters === undefined ? source : source.withParameters(parameters)
  // a second 401, after the renewal, is returned as it is
  const retry = (response: ResponseWithoutToken, token: AccessToken, source: TokenSource<E2, R2>) =>
    // drain the rejected response first, so that its connection goes back to the pool before the retry
    Effect.ignore(response.arrayBuffer).pipe(
      Effect.zipRight(source.renew(token)),
      Effect.flatMap((renewed) => send(response.request, renewed, Effect.succeed)),
      Effect.withSpan("AccessTokenHttpClient.retryUnauthorized", {
        attributes: { "http.request.method": response.request.method }
      })
    )
  const execute = (
    caller: HttpClientRequest.HttpClientRequest,
    fiber: Fiber.RuntimeFiber<unknown, unknown>
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, E | E2, R | R2> => {
    const source = sourceFor(Context.get(fiber.currentContext, CurrentTokenParameters))
    const request = withoutCredentials(caller)
    const sendWith = (token: AccessToken) =>
      send(request, token, (response) =>
        // a nonce challenge left unanswered after its one retry is not the token's fault: it is not renewed
        response.status === 401 && !dpop.isNonceChallenge(response.headers["www-authenticate"])
          ? retry(response, token, source)
          : Effect.succeed(response))
    // a cached token is taken in this step, from the caller's fiber, as `yield*` would take it (see `InlineHit`)
    const hit = source.get instanceof InlineHit ? source.get.hitIn(fiber) : undefined
    return hit !== undefined && Exit.isExit(hit) && Exit.isSuccess(hit)
      ? sendWith(hit.value as AccessToken)
      : Effect.flatMap(source.get, sendWith)
  }
  return HttpClient.makeWith(
    Effect.flatMap((caller: HttpClientRequest.HttpClientRequest) =>
      // the request's token parameters and a cached token, read from the fiber in the same step
      Effect.withFiberRuntime<HttpClientResponse.HttpClientResponse, E | E2, R | R2>((fiber) => execute(caller, fiber))
    ),
    Effect.succeed
  )
})

// the last list extended, so that requests under the same names share one array instead of making one each
let redactedNames: readonly [ReadonlyArray<string | RegExp>, ReadonlyArray<string | RegExp>] = [[], ["dpop"]]

const withDPoPRedacted = (names: ReadonlyArray<string | RegExp>): ReadonlyArray<string | RegExp> => {
  if (names.includes("dpop")) return names
  if (redactedNames[0] !== names) redactedNames = [names, [...names, "dpop"]]
  return redactedNames[1]
}

/**
 * A token source for a named client-credentials client.
 *
 * @since 0.1.0
 * @category sources
 */
export const clientCredentialsSource = (
  tokens: ClientCredentialsTokens["Type"],
  client: string,
  options?: TokenRequestOptions
): TokenSource<ClientCredentialsTokenError, never> => ({
  get: tokens.get(client, options),
  renew: (rejected) => tokens.renew(client, rejected, options),
  withParameters: (parameters) => clientCredentialsSource(tokens, client, mergeParameters(options, parameters))
})

/**
 * The service type of a named client-credentials HTTP client.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientCredentialsHttpClient = HttpClient.HttpClient.With<
  HttpClientError.HttpClientError | ClientCredentialsTokenError
>

/**
 * Options of a named HTTP client whose service type is `Client`.
 *
 * @since 0.1.0
 * @category models
 */
export interface NamedClientOptions<Client = HttpClient.HttpClient> {
  /** Prepended to every request URL. */
  readonly baseUrl?: string | undefined
  /**
   * Further changes to the client, applied outside the token middleware: `HttpClient.filterStatusOk`,
   * `HttpClient.retryTransient(...)`, tracing, ... Whatever it returns must keep the named client's type (its
   * errors are already part of it).
   */
  readonly transform?: ((client: Client) => Client) | undefined
  /**
   * The client certificate presented on connections to the API, through `MutualTls`: the certificate the
   * tokens are bound to (RFC 8705), usually the token client's `clientCertificate` and `clientCertificateKey`.
   *
   * @since 0.3.0
   */
  readonly mutualTls?: MutualTls.ClientIdentity | undefined
}

/** The platform's `HttpClient`, or the one that presents the named client's certificate. */
const transportOf = (options: NamedClientOptions<any> | undefined) =>
  options?.mutualTls === undefined ? HttpClient.HttpClient : MutualTls.httpClientFor(options.mutualTls)

/** The source, counting its 401 renewals under the named client's Tag key when metrics are on. */
const metered = <E, R>(tag: Context.Tag<any, any>, source: TokenSource<E, R>) =>
  Effect.map(TokenMetrics.Enabled, (enabled): TokenSource<E, R> => {
    if (!enabled) return source
    const retried = tokenMetrics.unauthorizedRetry(tag.key)
    const counting = (source: TokenSource<E, R>): TokenSource<E, R> => ({
      get: source.get,
      renew: (rejected) => Effect.zipRight(Effect.sync(retried), source.renew(rejected)),
      withParameters: source.withParameters === undefined
        ? undefined
        : (parameters) => counting(source.withParameters!(parameters))
    })
    return counting(source)
  })

const withOptions = <Client extends HttpClient.HttpClient.With<any, any>>(
  client: Client,
  options: NamedClientOptions<Client>
): Client => {
  const based = options.baseUrl === undefined
    ? client
    : HttpClient.mapRequest(client, HttpClientRequest.prependUrl(options.baseUrl)) as Client
  return options.transform === undefined ? based : options.transform(based)
}

/**
 * Declares a named HTTP client that carries the token of a client-credentials client: provides `tag` from the
 * platform's `HttpClient` and `ClientCredentialsTokens`.
 *
 * @example
 * ```ts
 * import { AccessTokenHttpClient } from "@effect-atm/core"
 * import { HttpClient } from "@effect/platform"
 * import { Context } from "effect"
 *
 * class CatalogApi extends Context.Tag("CatalogApi")<CatalogApi, AccessTokenHttpClient.ClientCredentialsHttpClient>() {}
 *
 * const CatalogApiLive = AccessTokenHttpClient.layerClientCredentials(CatalogApi, {
 *   client: "catalog",
 *   baseUrl: "https://catalog.example.com",
 *   transform: HttpClient.filterStatusOk // non-2xx answers fail with a ResponseError
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClientCredentials = <I>(
  tag: Context.Tag<I, ClientCredentialsHttpClient>,
  options: NamedClientOptions<ClientCredentialsHttpClient> & TokenRequestOptions & { readonly client: string }
): Layer.Layer<I, never, HttpClient.HttpClient | ClientCredentialsTokens> =>
  Layer.effect(
    tag,
    Effect.gen(function*() {
      const tokens = yield* ClientCredentialsTokens
      const client: ClientCredentialsHttpClient = yield* transportOf(options)
      const { baseUrl: _, client: name, mutualTls: __, transform: ___, ...parameters } = options
      const source = yield* metered(tag, clientCredentialsSource(tokens, name, parameters))
      return withOptions(withAccessToken(client, source), options)
    })
  )

/**
 * A token source for the current user's tokens (resolved per request from `CurrentUser`).
 *
 * @since 0.1.0
 * @category sources
 */
export const userSource = (
  tokens: UserTokens["Type"],
  options?: Omit<UserTokens.GetOptions, "forceRenewal">
): TokenSource<UserTokenError, never> => ({
  get: tokens.get(options),
  renew: (rejected) => tokens.renew(rejected, options),
  withParameters: (parameters) => userSource(tokens, mergeParameters(options, parameters))
})

/**
 * The service type of a named user-token HTTP client. Requests fail with `NoCurrentUser` on a fiber that acts
 * for no user, and with `SignInRequired` when the user's refresh token is gone.
 *
 * @since 0.1.0
 * @category models
 */
export type UserHttpClient = HttpClient.HttpClient.With<HttpClientError.HttpClientError | UserTokenError>

/**
 * Declares a named HTTP client that carries the current user's token (for `resource` and `scope`, or the
 * defaults of `UserTokens`): the counterpart of .NET's `AddUserAccessTokenHttpClient`. The user is looked up per
 * request; on a fiber without one, requests fail with `NoCurrentUser`. `layerCurrentUser` makes that a compile
 * error instead.
 *
 * @example
 * ```ts
 * import { AccessTokenHttpClient, CurrentUser } from "@effect-atm/core"
 * import { Context, Effect } from "effect"
 *
 * class OrdersApi extends Context.Tag("OrdersApi")<OrdersApi, AccessTokenHttpClient.UserHttpClient>() {}
 *
 * const OrdersApiLive = AccessTokenHttpClient.layerUser(OrdersApi, {
 *   baseUrl: "https://orders.example.com",
 *   resource: "https://orders.example.com" // a token for this API, beside the default resource's
 * })
 *
 * // Effect<HttpClientResponse, HttpClientError | UserTokenError, OrdersApi>: NoCurrentUser is a run-time error here
 * const orders = Effect.flatMap(OrdersApi, (api) => api.get("/orders"))
 * const forAlice = orders.pipe(CurrentUser.provide(new CurrentUser.User({ subject: "alice", sessionId: "s-1" })))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerUser = <I>(
  tag: Context.Tag<I, UserHttpClient>,
  options?: NamedClientOptions<UserHttpClient> & Omit<UserTokens.GetOptions, "forceRenewal">
): Layer.Layer<I, never, HttpClient.HttpClient | UserTokens> =>
  Layer.effect(
    tag,
    Effect.gen(function*() {
      const tokens = yield* UserTokens
      const client: UserHttpClient = yield* transportOf(options)
      const { baseUrl: _, mutualTls: __, transform: ___, ...parameters } = options ?? {}
      return withOptions(withAccessToken(client, yield* metered(tag, userSource(tokens, parameters))), options ?? {})
    })
  )

/**
 * The service type of a named client whose requests need `CurrentUser` in their context: forgetting to provide
 * the user is a type error, not a `NoCurrentUser` at run time.
 *
 * @since 0.2.0
 * @category models
 */
export type CurrentUserHttpClient = HttpClient.HttpClient.With<
  HttpClientError.HttpClientError | Exclude<UserTokenError, NoCurrentUser>,
  CurrentUser
>

/**
 * A token source for the user in the context of each request.
 *
 * @since 0.2.0
 * @category sources
 */
export const currentUserSource = (
  tokens: UserTokens["Type"],
  options?: Omit<UserTokens.GetOptions, "forceRenewal">
): TokenSource<Exclude<UserTokenError, NoCurrentUser>, CurrentUser> => ({
  get: Effect.flatMap(CurrentUser, (user) => tokens.getFor(user, options)),
  renew: (rejected) => Effect.flatMap(CurrentUser, (user) => tokens.renewFor(user, rejected, options)),
  withParameters: (parameters) => currentUserSource(tokens, mergeParameters(options, parameters))
})

/**
 * Declares a named HTTP client that carries the token of the user in each request's context, typed so that
 * every request requires `CurrentUser`.
 *
 * @example
 * ```ts
 * import { AccessTokenHttpClient, CurrentUser } from "@effect-atm/core"
 * import { Context, Effect } from "effect"
 *
 * class DemoApi extends Context.Tag("DemoApi")<DemoApi, AccessTokenHttpClient.CurrentUserHttpClient>() {}
 *
 * const DemoApiLive = AccessTokenHttpClient.layerCurrentUser(DemoApi, { baseUrl: "https://api.example.com" })
 *
 * // Effect<HttpClientResponse, …, DemoApi | CurrentUser>: provide the user per connection or job
 * const data = Effect.flatMap(DemoApi, (api) => api.get("/data"))
 * const forAlice = data.pipe(CurrentUser.provide(new CurrentUser.User({ subject: "alice" })))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerCurrentUser = <I>(
  tag: Context.Tag<I, CurrentUserHttpClient>,
  options?: NamedClientOptions<CurrentUserHttpClient> & Omit<UserTokens.GetOptions, "forceRenewal">
): Layer.Layer<I, never, HttpClient.HttpClient | UserTokens> =>
  Layer.effect(
    tag,
    Effect.gen(function*() {
      const tokens = yield* UserTokens
      const client = yield* transportOf(options)
      const { baseUrl: _, mutualTls: __, transform: ___, ...parameters } = options ?? {}
      return withOptions(
        withAccessToken(client, yield* metered(tag, currentUserSource(tokens, parameters))),
        options ?? {}
      )
    })
  )

/**
 * A token source for a token-exchange target, for the user in each request's context.
 *
 * @since 0.3.0
 * @category sources
 */
export const tokenExchangeSource = (
  exchange: TokenExchange["Type"],
  target: string,
  options?: TokenRequestOptions
): TokenSource<Exclude<TokenExchangeError, NoCurrentUser>, CurrentUser> => ({
  get: Effect.flatMap(CurrentUser, (user) => exchange.getFor(user, target, options)),
  renew: (rejected) => Effect.flatMap(CurrentUser, (user) => exchange.renewFor(user, target, rejected, options)),
  withParameters: (parameters) => tokenExchangeSource(exchange, target, mergeParameters(options, parameters))
})

/**
 * The service type of a named client that calls a downstream API on behalf of the user in each request's context,
 * with a token obtained by token exchange.
 *
 * @since 0.3.0
 * @category models
 */
export type TokenExchangeHttpClient = HttpClient.HttpClient.With<
  HttpClientError.HttpClientError | Exclude<TokenExchangeError, NoCurrentUser>,
  CurrentUser
>

/**
 * Declares a named HTTP client that calls a downstream API as the current user: the user's access token is
 * exchanged (RFC 8693) for a token of the `target` configured in `TokenExchange`, cached per user and target.
 *
 * @example
 * ```ts
 * import { AccessTokenHttpClient, CurrentUser } from "@effect-atm/core"
 * import { Context, Effect } from "effect"
 *
 * class BillingApi extends Context.Tag("BillingApi")<BillingApi, AccessTokenHttpClient.TokenExchangeHttpClient>() {}
 *
 * const BillingApiLive = AccessTokenHttpClient.layerTokenExchange(BillingApi, {
 *   target: "billing",
 *   baseUrl: "https://billing.example.com"
 * })
 *
 * const invoices = Effect.flatMap(BillingApi, (api) => api.get("/invoices"))
 * const forAlice = invoices.pipe(CurrentUser.provide(new CurrentUser.User({ subject: "alice" })))
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layerTokenExchange = <I>(
  tag: Context.Tag<I, TokenExchangeHttpClient>,
  options: NamedClientOptions<TokenExchangeHttpClient> & TokenRequestOptions & { readonly target: string }
): Layer.Layer<I, never, HttpClient.HttpClient | TokenExchange> =>
  Layer.effect(
    tag,
    Effect.gen(function*() {
      const exchange = yield* TokenExchange
      const client = yield* transportOf(options)
      const { baseUrl: _, mutualTls: __, target, transform: ___, ...parameters } = options
      return withOptions(withAccessToken(client, tokenExchangeSource(exchange, target, parameters)), options)
    })
  )
