import * as PlatformHeaders from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Cache from "effect/Cache"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import * as oidc from "openid-client"
import { AccessToken, toFormParameters } from "../AccessToken.js"
import { MutualTls } from "../MutualTls.js"
import type { TokenClientLike } from "../TokenClient.js"
import type { Grant, ServerMetadata, TokenEndpoint, TokenResponse } from "../TokenEndpoint.js"
import {
  DiscoveryFailed,
  InvalidTokenResponse,
  type Operation,
  type TokenEndpointError,
  TokenEndpointTimeout,
  TokenEndpointUnavailable,
  TokenRequestRejected
} from "../TokenError.js"
import { clientAuth } from "./clientAuthentication.js"
import * as dpop from "./dpop.js"

/** @internal */
export interface RawTokenResponse {
  readonly access_token?: unknown
  readonly token_type?: unknown
  readonly expires_in?: unknown
  readonly refresh_token?: unknown
  readonly id_token?: unknown
  readonly scope?: unknown
}

const loopbackHosts = new Set(["127.0.0.1", "localhost", "[::1]", "::1"])

const isLoopback = (url: string | undefined): boolean => {
  if (url === undefined) return true
  try {
    return loopbackHosts.has(new URL(url).hostname)
  } catch {
    return false
  }
}

const allowsInsecure = (client: TokenClientLike): boolean =>
  client.allowInsecureRequests ||
  (isLoopback(client.issuer) && isLoopback(client.tokenEndpoint) && isLoopback(client.revocationEndpoint))

const endpointOf = (client: TokenClientLike): string => client.tokenEndpoint ?? client.issuer ?? "(unknown endpoint)"

/**
 * What the transport saw of one exchange with the provider, for the classification of a failure and for what
 * openid-client does not hand back when it rejects a response.
 */
interface Exchange {
  status?: number
  retryAfter?: string | undefined
  /** a refresh token in a 2xx token response: kept even when the rest of the response is unusable */
  rotatedRefreshToken?: Redacted.Redacted<string>
  /** an ID token taken out of the response before openid-client checks it against an unknown issuer */
  uncheckedIdToken?: Redacted.Redacted<string>
}

/** A failure of the transport itself (no usable HTTP response), thrown through openid-client to `mapError`. */
class TransportFailure extends Error {
  constructor(readonly reason: string, readonly tooLarge: boolean) {
    super(reason)
  }
}

const findTransportFailure = (error: unknown): TransportFailure | undefined => {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    if (current instanceof TransportFailure) return current
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

const nullBodyStatuses = new Set([101, 103, 204, 205, 304])

const bodyText = (body: unknown): string | undefined =>
  body === undefined || body === null
    ? undefined
    : typeof body === "string"
    ? body
    : body instanceof URLSearchParams
    ? body.toString()
    : String(body)

/** Whether a body is content-encoded (gzip, br, ...): a decoding client may hand over more than its declared length. */
const encoded = (contentEncoding: string | undefined): boolean =>
  contentEncoding !== undefined && contentEncoding.trim() !== "" && contentEncoding.trim().toLowerCase() !== "identity"

/** What a token response holds that must survive openid-client rejecting it; `stripIdToken` takes the ID token out. */
const inspectTokenResponse = (bytes: Uint8Array, exchange: Exchange, stripIdToken: boolean): Uint8Array => {
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder().decode(bytes))
  } catch {
    return bytes
  }
  if (typeof json !== "object" || json === null) return bytes
  const body = json as Record<string, unknown>
  if (typeof body.refresh_token === "string" && body.refresh_token.length > 0) {
    exchange.rotatedRefreshToken = Redacted.make(body.refresh_token)
  }
  if (stripIdToken && typeof body.id_token === "string" && body.id_token.length > 0) {
    exchange.uncheckedIdToken = Redacted.make(body.id_token)
    delete body.id_token
    return new TextEncoder().encode(JSON.stringify(body))
  }
  return bytes
}

/**
 * openid-client's `customFetch` over the application's `HttpClient`: proxies, TLS settings, tracing and test
 * transports apply. The request runs on the calling fiber's runtime (its clock, tracer, services) and is interrupted
 * with `signal`. The body is read up to `maxBytes`: a longer one is abandoned, not buffered.
 */
const transport = (options: {
  readonly http: HttpClient.HttpClient
  readonly runtime: Runtime.Runtime<never>
  readonly signal: AbortSignal
  readonly maxBytes: number
  readonly nonces: dpop.Nonces
  readonly exchange: Exchange
  readonly tokenResponse: boolean
  readonly stripIdToken: boolean
}): oidc.CustomFetch =>
async (url, init) => {
  const { exchange, maxBytes } = options
  const tooLarge = () =>
    new TransportFailure(`the response is larger than ${maxBytes} bytes; it was not read further`, true)
  const headers: Record<string, string> = {}
  new Headers(init.headers as HeadersInit).forEach((value, name) => {
    headers[name] = value
  })
  const body = bodyText(init.body)
  let request = HttpClientRequest.make(init.method as "GET" | "POST")(url, { headers })
  if (body !== undefined) {
    request = HttpClientRequest.bodyText(request, body, headers["content-type"] ?? "application/x-www-form-urlencoded")
  }
  const effect = Effect.gen(function*() {
    // a span of the HttpClient records request headers: a DPoP proof is redacted there like the Authorization header
    const response = yield* Effect.locallyWith(
      options.http.execute(request),
      PlatformHeaders.currentRedactedNames,
      withDPoP
    )
    options.nonces.set(url, response.headers["dpop-nonce"])
    exchange.status = response.status
    exchange.retryAfter = response.headers["retry-after"]
    const declared = Number(response.headers["content-length"])
    if (Number.isFinite(declared) && declared > maxBytes) return yield* Effect.fail(tooLarge())
    let bytes: Uint8Array
    if (Number.isFinite(declared) && !encoded(response.headers["content-encoding"])) {
      // its length is declared and within the bound, and no decoder can inflate it: read whole. The stream (Node's
      // through Effect's, ended by aborting the request's controller: an AbortError with its stack trace) cost ~180
      // µs more per request, a fifth of a loopback token request (bench/README.md, P11)
      bytes = new Uint8Array(yield* response.arrayBuffer)
    } else {
      const chunks: Array<Uint8Array> = []
      let size = 0
      yield* Stream.runForEach(response.stream, (chunk) => {
        size += chunk.length
        if (size > maxBytes) return Effect.fail(tooLarge())
        chunks.push(chunk)
        return Effect.void
      })
      bytes = Buffer.concat(chunks)
    }
    if (options.tokenResponse && response.status >= 200 && response.status < 300) {
      bytes = inspectTokenResponse(bytes, exchange, options.stripIdToken)
    }
    const responseHeaders = new Headers(response.headers as Record<string, string>)
    responseHeaders.delete("content-length")
    responseHeaders.delete("content-encoding")
    return new Response(nullBodyStatuses.has(response.status) ? null : bytes as unknown as BodyInit, {
      status: response.status,
      headers: responseHeaders
    })
  })
  const exit = await Runtime.runPromiseExit(options.runtime, effect, { signal: options.signal })
  if (Exit.isSuccess(exit)) return exit.value
  if (Exit.isInterrupted(exit)) throw new DOMException("The request was aborted", "AbortError")
  const failure = Cause.squash(exit.cause)
  if (failure instanceof TransportFailure) throw failure
  // an HttpClientError carries the request (its Authorization header): keep only its reason and its cause
  const reason = (failure as { reason?: unknown }).reason
  const cause = (failure as { cause?: unknown }).cause
  throw new TransportFailure(
    `${typeof reason === "string" ? `${reason} error` : "transport error"}: ${describeCause(cause ?? failure)}`,
    false
  )
}

interface Transport {
  readonly http: HttpClient.HttpClient
  readonly maxBytes: number
  /** the DPoP nonces the provider sent, per origin */
  readonly nonces: dpop.Nonces
}

/** What oauth4webapi's DPoP handle has, and openid-client's type does not show. */
interface NonceCache {
  cacheNonce(response: Response, url: URL): void
}

const withDPoP = (names: ReadonlyArray<string | RegExp>): ReadonlyArray<string | RegExp> =>
  names.includes("dpop") ? names : [...names, "dpop"]

const configuration = (
  client: TokenClientLike,
  metadata: ServerMetadata,
  fetch: oidc.CustomFetch
) => {
  const config = new oidc.Configuration(
    metadata as oidc.ServerMetadata,
    client.clientId,
    {},
    clientAuth(client, metadata.token_endpoint)
  )
  config.timeout = 0 // the Effect timeout governs, so that a timeout is a typed error and not an abort
  config[oidc.customFetch] = fetch
  if (allowsInsecure(client)) oidc.allowInsecureRequests(config)
  return config
}

/** `Retry-After` in milliseconds from `now`: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export const parseRetryAfter = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code
    const inner = (cause as { cause?: unknown }).cause
    const innerText = inner instanceof Error ? `: ${(inner as { code?: string }).code ?? inner.message}` : ""
    return `${typeof code === "string" ? `${code} ` : ""}${cause.message}${innerText}`
  }
  return "unknown failure"
}

const inferredError = (operation: Operation, status: number): string =>
  operation === "refresh_token" ? "invalid_grant" : status === 400 ? "invalid_request" : "invalid_client"

/**
 * Maps whatever openid-client threw to a typed error, without copying any response body (it may hold tokens). The
 * decision table is in docs/errors.md ("How provider answers are classified").
 */
const mapError = (
  client: TokenClientLike,
  operation: Operation,
  endpoint: string,
  exchange: Exchange,
  now: number
) =>
(error: unknown): TokenEndpointError => {
  const base = { operation, clientId: client.clientId, endpoint }
  const retryAfter = parseRetryAfter(exchange.retryAfter, now)
  const after = retryAfter === undefined ? {} : { retryAfter }
  const transportFailure = findTransportFailure(error)
  if (transportFailure !== undefined) {
    return transportFailure.tooLarge
      ? new InvalidTokenResponse({ ...base, reason: transportFailure.reason })
      : new TokenEndpointUnavailable({ ...base, reason: transportFailure.reason })
  }
  if (error instanceof oidc.AuthorizationResponseError) {
    // the authorization response itself is an error: no request was made
    return new InvalidTokenResponse({ ...base, reason: `the authorization response is the error "${error.error}"` })
  }
  if (error instanceof oidc.ResponseBodyError) {
    return error.status >= 500
      ? new TokenEndpointUnavailable({
        ...base,
        status: error.status,
        reason: `server error "${error.error}"`,
        ...after
      })
      : new TokenRequestRejected({
        ...base,
        status: error.status,
        error: error.error,
        ...(error.error_description ? { errorDescription: error.error_description } : {}),
        ...after
      })
  }
  if (error instanceof oidc.WWWAuthenticateChallengeError) {
    const challenge = error.cause[0]
    return new TokenRequestRejected({
      ...base,
      status: error.status,
      error: challenge?.parameters.error ?? "invalid_client",
      ...(challenge?.parameters.error_description
        ? { errorDescription: challenge.parameters.error_description }
        : {}),
      ...after
    })
  }
  if (error instanceof oidc.ClientError) {
    if (error.code === "OAUTH_ABORT" || error.code === "OAUTH_TIMEOUT") {
      return new TokenEndpointUnavailable({ ...base, reason: "request aborted" })
    }
    const status = exchange.status
    if (status !== undefined && (status < 200 || status >= 300)) {
      // no usable OAuth error body: classify by status
      if (status >= 500 || status === 429) {
        const reason = status === 429 ? "too many requests" : "server error"
        return new TokenEndpointUnavailable({ ...base, status, reason, ...after })
      }
      if (status === 401 || status === 403 || (status === 400 && operation !== "discovery")) {
        return new TokenRequestRejected({
          ...base,
          status,
          error: inferredError(operation, status),
          inferred: true,
          ...after
        })
      }
      return new InvalidTokenResponse({ ...base, reason: `unexpected HTTP ${status} [${error.code ?? "no code"}]` })
    }
    // openid-client's message is generic; its cause's (oauth4webapi's, fixed texts that name the check, never a
    // value) says which check failed, e.g. the ID token's nonce
    const which = error.cause instanceof Error && !(error.cause instanceof Response) ? `: ${error.cause.message}` : ""
    return new InvalidTokenResponse({ ...base, reason: `${error.message}${which} [${error.code ?? "no code"}]` })
  }
  return new TokenEndpointUnavailable({ ...base, reason: describeCause(error) })
}

/** The well-known URL openid-client fetches for an issuer (OpenID Connect Discovery: appended to the path). */
export const discoveryUrl = (issuer: string): string => {
  const url = new URL(issuer)
  url.pathname = `${url.pathname}/.well-known/openid-configuration`.replace("//", "/")
  return url.href
}

const discoveryFailure = (
  clientId: string,
  issuer: string,
  error: unknown,
  mapped: TokenEndpointError
): DiscoveryFailed => {
  const base = { clientId, issuer, discoveryUrl: discoveryUrl(issuer) }
  // a document that names another issuer: openid-client reports the comparison with the document it read,
  // directly or inside the error it wraps
  type Comparison = { attribute?: unknown; body?: { issuer?: unknown }; cause?: Comparison } | undefined
  const comparison = (error instanceof oidc.ClientError ? error.cause : undefined) as Comparison
  const found = comparison?.attribute === undefined ? comparison?.cause : comparison
  if (
    error instanceof oidc.ClientError && error.code === "OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED" &&
    found?.attribute === "issuer" && typeof found.body?.issuer === "string"
  ) {
    return new DiscoveryFailed({
      ...base,
      foundIssuer: found.body.issuer,
      reason: "the metadata document names another issuer",
      transient: false
    })
  }
  switch (mapped._tag) {
    case "TokenEndpointUnavailable":
      return new DiscoveryFailed({
        ...base,
        ...(mapped.status === undefined ? {} : { status: mapped.status }),
        reason: mapped.reason,
        transient: true
      })
    case "TokenEndpointTimeout":
      return new DiscoveryFailed({ ...base, reason: `no answer within ${mapped.timeoutMillis} ms`, transient: true })
    case "TokenRequestRejected":
      return new DiscoveryFailed({
        ...base,
        status: mapped.status,
        reason: `the request was refused (HTTP ${mapped.status})`,
        transient: false
      })
    case "InvalidTokenResponse":
      return new DiscoveryFailed({
        ...base,
        reason: `not a usable metadata document: ${mapped.reason}`,
        transient: false
      })
    case "DiscoveryFailed":
      return mapped
  }
}

const rotations = new WeakMap<object, Redacted.Redacted<string>>()

/**
 * The refresh token of a 2xx refresh response that was unusable otherwise: the provider may have rotated it, so it
 * must be stored. Kept beside the error, never in it, so that no rendering of the error shows it.
 *
 * @internal
 */
export const rotatedRefreshToken = (error: unknown): Option.Option<Redacted.Redacted<string>> => {
  const original = unwrap(error)
  return typeof original === "object" && original !== null
    ? Option.fromNullable(rotations.get(original))
    : Option.none()
}

/** The error itself, not the proxies by which Effect attaches the spans it failed in. */
const unwrap = <E>(error: E): E => {
  let current = error
  for (let depth = 0; depth < 16; depth++) {
    const original = Cause.originalError(current)
    if (original === current) break
    current = original
  }
  return current
}

const isString = (u: unknown): u is string => typeof u === "string" && u.length > 0

/** @internal */
export const decodeResponse = (
  client: TokenClientLike,
  operation: Operation,
  endpoint: string,
  response: RawTokenResponse,
  now: number,
  defaultLifetime: Duration.Duration,
  dpopKey?: Redacted.Redacted<string> | undefined
): Effect.Effect<TokenResponse, InvalidTokenResponse> => {
  const invalid = (reason: string) =>
    Effect.fail(new InvalidTokenResponse({ operation, clientId: client.clientId, endpoint, reason }))
  if (!isString(response.access_token)) return invalid("access_token is missing or not a string")
  const tokenType = typeof response.token_type === "string" ? response.token_type.toLowerCase() : undefined
  if (tokenType !== "bearer" && tokenType !== "dpop") {
    return invalid(`token_type must be "Bearer" or "DPoP", got ${JSON.stringify(response.token_type ?? null)}`)
  }
  let lifetimeMillis = Duration.toMillis(defaultLifetime)
  if (response.expires_in !== undefined) {
    const expiresIn = Number(response.expires_in)
    if (!Number.isFinite(expiresIn) || expiresIn <= 0) return invalid("expires_in must be a positive number")
    lifetimeMillis = expiresIn * 1000
  }
  if (response.refresh_token !== undefined && !isString(response.refresh_token)) {
    return invalid("refresh_token must be a string")
  }
  if (response.id_token !== undefined && !isString(response.id_token)) return invalid("id_token must be a string")
  return Effect.succeed({
    // every field is checked above: the class's own validation (~40 µs, a twentieth of a loopback request) is skipped
    accessToken: new AccessToken({
      accessToken: Redacted.make(response.access_token),
      tokenType: tokenType === "dpop" ? "DPoP" : "Bearer",
      issuedAt: now,
      expiresAt: now + lifetimeMillis,
      ...(isString(response.scope) ? { scope: response.scope } : {}),
      // a DPoP token is bound to the key its request proved; a bearer token answered to a proof is not
      ...(tokenType === "dpop" && dpopKey !== undefined ? { dpopKey } : {})
    }, { disableValidation: true }),
    ...(isString(response.refresh_token) ? { refreshToken: Redacted.make(response.refresh_token) } : {}),
    ...(isString(response.id_token) ? { idToken: Redacted.make(response.id_token) } : {})
  })
}

const tokenExchangeGrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
const accessTokenType = "urn:ietf:params:oauth:token-type:access_token"

/** The form of a token exchange: the target's parameters and the tokens, unwrapped for this one request body. */
const tokenExchangeForm = (
  grant: Extract<Grant, { readonly _tag: "TokenExchange" }>,
  form: Record<string, string>
): Record<string, string> => ({
  ...form,
  subject_token: Redacted.value(grant.subjectToken),
  subject_token_type: grant.subjectTokenType ?? accessTokenType,
  ...(grant.actorToken === undefined ? {} : {
    actor_token: Redacted.value(grant.actorToken),
    actor_token_type: grant.actorTokenType ?? accessTokenType
  })
})

/**
 * The provider's endpoints for a client whose requests present its certificate: the `mtls_endpoint_aliases` of
 * discovery (RFC 8705 §5) where the provider has them — where it asks for the certificate, authenticates with it
 * and binds tokens to it — and the plain ones elsewhere.
 */
const withMutualTlsAliases = (server: ServerMetadata): ServerMetadata => {
  const aliases = server.mtls_endpoint_aliases
  if (typeof aliases !== "object" || aliases === null) return server
  const { revocation_endpoint, token_endpoint } = aliases as Record<string, unknown>
  return {
    ...server,
    ...(typeof token_endpoint === "string" ? { token_endpoint } : {}),
    ...(typeof revocation_endpoint === "string" ? { revocation_endpoint } : {})
  }
}

/**
 * Set by a manager around a refresh whose answer must not be abandoned (a refresh token the provider may rotate):
 * at the endpoint's `timeout` the request's waiters are released with the `TokenEndpointTimeout` they would have
 * seen (`release`), while the request itself keeps waiting for the answer up to `timeout` here.
 *
 * @internal
 */
export class AnswerGrace extends Context.Reference<AnswerGrace>()("@effect-atm/core/internal/AnswerGrace", {
  defaultValue: (): Option.Option<{
    readonly timeout: Duration.Duration
    readonly release: (error: TokenEndpointTimeout) => Effect.Effect<void>
  }> => Option.none()
}) {}

/** @internal */
export const make = (options?: {
  readonly timeout?: Duration.DurationInput | undefined
  readonly defaultLifetime?: Duration.DurationInput | undefined
  readonly metadataTimeToLive?: Duration.DurationInput | undefined
  readonly maxResponseBytes?: number | undefined
}): Effect.Effect<TokenEndpoint["Type"], never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const timeout = Duration.decode(options?.timeout ?? Duration.seconds(10))
    const defaultLifetime = Duration.decode(options?.defaultLifetime ?? Duration.minutes(5))
    const metadataTimeToLive = Duration.decode(options?.metadataTimeToLive ?? Duration.hours(1))
    const io: Transport = {
      http: yield* HttpClient.HttpClient,
      maxBytes: options?.maxResponseBytes ?? 1024 * 1024,
      nonces: new dpop.Nonces()
    }

    /**
     * Runs one openid-client call over the application's `HttpClient`: interruptible, timed out, and with its
     * failures typed. `onFailure` sees the typed error and what the transport saw.
     */
    const mutualTls = yield* MutualTls
    const mutualTlsTransports = new WeakMap<Redacted.Redacted<string>, Transport>()
    /**
     * The transport of a client with a certificate: an `HttpClient` that presents it (made once per certificate),
     * so that it authenticates with it and its tokens are bound to it (RFC 8705).
     */
    const transportFor = (client: TokenClientLike, operation: Operation, endpoint: string) => {
      const { clientCertificate: certificate, clientCertificateKey: key } = client
      if (certificate === undefined || key === undefined) return Effect.succeed(io)
      const known = mutualTlsTransports.get(certificate)
      if (known !== undefined) return Effect.succeed(known)
      if (mutualTls.httpClient === undefined) {
        return Effect.fail({
          error: new TokenEndpointUnavailable({
            operation,
            clientId: client.clientId,
            endpoint,
            reason: "the client has a certificate for mutual TLS, but no transport presents it: provide " +
              "MutualTls.layer(...) with an HttpClient that presents the certificate"
          }),
          cause: undefined,
          exchange: {} as Exchange
        })
      }
      return Effect.map(mutualTls.httpClient({ certificate, key }), (http): Transport => {
        const transport = { ...io, http }
        mutualTlsTransports.set(certificate, transport)
        return transport
      })
    }

    const call = <A>(
      client: TokenClientLike,
      operation: Operation,
      endpoint: string,
      f: (fetch: oidc.CustomFetch, exchange: Exchange) => Promise<A>,
      flags?: { readonly tokenResponse?: boolean; readonly stripIdToken?: boolean }
    ): Effect.Effect<
      [A, Exchange],
      { readonly error: TokenEndpointError; readonly cause: unknown; exchange: Exchange }
    > =>
      Effect.flatMap(
        Effect.zip(Effect.runtime<never>(), transportFor(client, operation, endpoint)),
        ([runtime, io]) => {
          const exchange: Exchange = {}
          const timedOut = (millis: number) =>
            new TokenEndpointTimeout({ operation, clientId: client.clientId, endpoint, timeoutMillis: millis })
          // a refresh may rotate the refresh token: its answer is awaited past the timeout, its waiters are not
          const grace = Option.filter(
            Context.get(runtime.context, AnswerGrace),
            (grace) => operation === "refresh_token" && Duration.greaterThan(grace.timeout, timeout)
          )
          const limit = grace._tag === "Some" ? grace.value.timeout : timeout
          const request = Effect.tryPromise({
            try: (signal) =>
              f(
                transport({
                  ...io,
                  runtime,
                  signal,
                  exchange,
                  tokenResponse: flags?.tokenResponse ?? false,
                  stripIdToken: flags?.stripIdToken ?? false
                }),
                exchange
              ),
            catch: (cause) => cause
          }).pipe(
            Effect.map((a): [A, Exchange] => [a, exchange]),
            Effect.catchAll((cause) =>
              Effect.flatMap(
                Clock.currentTimeMillis,
                (now) =>
                  Effect.fail({ error: mapError(client, operation, endpoint, exchange, now)(cause), cause, exchange })
              )
            ),
            Effect.timeoutFail({
              duration: limit,
              onTimeout: () => ({ error: timedOut(Duration.toMillis(limit)), cause: undefined, exchange })
            })
          )
          if (grace._tag === "None") return request
          const release = grace.value.release(timedOut(Duration.toMillis(timeout)))
          // the release runs beside the request, and goes with it when the answer comes first
          return Effect.scoped(
            Effect.zipRight(Effect.forkScoped(Effect.delay(release, timeout)), request)
          )
        }
      )

    /**
     * openid-client's DPoP handle for one request: it makes the proofs (a new one for its one retry on
     * `use_dpop_nonce`, with a fresh client authentication too), starting from the nonce last seen for the endpoint.
     */
    const dpopHandle = async (
      config: oidc.Configuration,
      endpoint: string,
      key: ReturnType<typeof dpop.load>,
      serialized: Redacted.Redacted<string>
    ) => {
      const handle = oidc.getDPoPHandle(config, await dpop.keyPair(key, serialized))
      const nonce = io.nonces.get(endpoint)
      // the handle's own nonce memory lives as long as the handle: it is given the one remembered per origin
      if (nonce !== undefined) {
        ;(handle as unknown as NonceCache).cacheNonce(
          new Response(null, { headers: { "dpop-nonce": nonce } }),
          new URL(endpoint)
        )
      }
      return handle
    }

    const discovered = yield* Cache.makeWith({
      capacity: 256,
      lookup: (key: string) => {
        const [issuer, clientId, insecure] = JSON.parse(key) as [string, string, boolean]
        const client = { clientId, issuer, authentication: "none", allowInsecureRequests: insecure } as const
        return call(client, "discovery", discoveryUrl(issuer), (fetch) =>
          oidc.discovery(new URL(issuer), clientId, undefined, undefined, {
            [oidc.customFetch]: fetch,
            timeout: 0,
            ...(allowsInsecure(client) ? { execute: [oidc.allowInsecureRequests] } : {})
          })).pipe(
            Effect.map(([config]): ServerMetadata =>
              config.serverMetadata()
            ),
            Effect.mapError((failure) =>
              discoveryFailure(clientId, issuer, failure.cause, failure.error)
            )
          )
      },
      // failures are never remembered: the next call discovers again
      timeToLive: (exit) => Exit.isSuccess(exit) ? metadataTimeToLive : Duration.zero
    })

    // a client with a certificate uses the provider's mTLS aliases: derived once per discovered document
    const aliased = new WeakMap<ServerMetadata, ServerMetadata>()
    const withAliases = (server: ServerMetadata): ServerMetadata => {
      let found = aliased.get(server)
      if (found === undefined) aliased.set(server, found = withMutualTlsAliases(server))
      return found
    }

    const metadata = (client: TokenClientLike): Effect.Effect<ServerMetadata, DiscoveryFailed> => {
      if (client.tokenEndpoint !== undefined) {
        return Effect.succeed({
          // without an issuer, the origin stands in; ID tokens are then not checked against it (see `request`)
          issuer: client.issuer ?? new URL(client.tokenEndpoint).origin,
          token_endpoint: client.tokenEndpoint,
          ...(client.revocationEndpoint ? { revocation_endpoint: client.revocationEndpoint } : {})
        })
      }
      const server = discovered.get(JSON.stringify([client.issuer, client.clientId, client.allowInsecureRequests]))
      return client.clientCertificate === undefined ? server : Effect.map(server, withAliases)
    }

    const request = (client: TokenClientLike, grant: Grant): Effect.Effect<TokenResponse, TokenEndpointError> => {
      const operation: Operation = grant._tag === "ClientCredentials"
        ? "client_credentials"
        : grant._tag === "RefreshToken"
        ? "refresh_token"
        : grant._tag === "TokenExchange"
        ? "token_exchange"
        : "authorization_code"
      return Effect.gen(function*() {
        const server = yield* metadata(client)
        const endpoint = server.token_endpoint ?? endpointOf(client)
        const form = toFormParameters(grant.options)
        // expiry counts from when the request was sent: the token may have been issued any time after
        const sentAt = yield* Clock.currentTimeMillis
        const proofKey = grant.dpopKey === undefined ? undefined : dpop.load(grant.dpopKey)
        const [raw, exchange] = yield* call(client, operation, endpoint, async (fetch) => {
          const config = configuration(client, server, fetch)
          const options = proofKey === undefined ? undefined : {
            DPoP: await dpopHandle(config, endpoint, proofKey, grant.dpopKey!)
          }
          switch (grant._tag) {
            case "ClientCredentials":
              return oidc.clientCredentialsGrant(config, form, options)
            case "RefreshToken":
              return oidc.refreshTokenGrant(config, Redacted.value(grant.refreshToken), form, options)
            case "TokenExchange":
              return oidc.genericGrantRequest(config, tokenExchangeGrantType, tokenExchangeForm(grant, form), options)
            case "AuthorizationCode":
              return oidc.authorizationCodeGrant(
                config,
                grant.callbackUrl,
                {
                  pkceCodeVerifier: Redacted.value(grant.codeVerifier),
                  expectedState: grant.expectedState,
                  expectedNonce: Redacted.value(grant.expectedNonce),
                  idTokenExpected: true
                },
                form,
                options
              )
          }
        }, {
          tokenResponse: true,
          // no issuer configured: an ID token cannot be checked against one (the origin of the token endpoint is
          // not the issuer when the issuer has a path), so openid-client does not see it; it is kept unchecked
          stripIdToken: client.issuer === undefined && grant._tag !== "AuthorizationCode"
        }).pipe(Effect.catchAll((failure) => remember(failure.error, failure.exchange)))
        const response = exchange.uncheckedIdToken === undefined
          ? raw as RawTokenResponse
          : { ...raw as RawTokenResponse, id_token: Redacted.value(exchange.uncheckedIdToken) }
        const decoded = yield* decodeResponse(
          client,
          operation,
          endpoint,
          response,
          sentAt,
          defaultLifetime,
          grant.dpopKey
        ).pipe(Effect.catchAll((error) => remember(error, exchange)))
        if (grant._tag !== "AuthorizationCode") return decoded
        const claims = (raw as { claims?: () => Record<string, unknown> | undefined }).claims?.()
        return claims === undefined ? decoded : { ...decoded, idTokenClaims: claims }
      }).pipe(
        Effect.withSpan("TokenEndpoint.request", {
          kind: "client",
          attributes: { "oauth.grant_type": operation, "oauth.client_id": client.clientId },
          captureStackTrace: false
        })
      )
    }

    /** Fails with `error`, keeping beside it the refresh token of a 2xx response that could not be used. */
    const remember = <E extends TokenEndpointError>(error: E, exchange: Exchange): Effect.Effect<never, E> => {
      if (exchange.rotatedRefreshToken !== undefined) rotations.set(unwrap(error), exchange.rotatedRefreshToken)
      return Effect.fail(error)
    }

    const revoke = (client: TokenClientLike, token: Redacted.Redacted<string>, hint: string) =>
      Effect.gen(function*() {
        const server = yield* metadata(client)
        const endpoint = server.revocation_endpoint
        if (endpoint === undefined) {
          return
        }
        yield* call(client, "revocation", endpoint, (fetch) =>
          oidc.tokenRevocation(configuration(client, server, fetch), Redacted.value(token), {
            token_type_hint: hint
          })).pipe(Effect.mapError((failure) =>
            failure.error
          ))
      }).pipe(
        Effect.withSpan("TokenEndpoint.revoke", {
          kind: "client",
          attributes: { "oauth.client_id": client.clientId, "oauth.token_type_hint": hint },
          captureStackTrace: false
        })
      )

    const decode = (client: TokenClientLike, operation: Operation, response: RawTokenResponse, sentAt?: number) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) =>
          decodeResponse(client, operation, endpointOf(client), response, Math.min(sentAt ?? now, now), defaultLifetime)
      )

    return { request, revoke, metadata, decode }
  })
