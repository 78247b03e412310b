import * as Cache from "effect/Cache"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as oidc from "openid-client"
import { AccessToken, toFormParameters } from "../AccessToken.js"
import type { TokenClientLike } from "../TokenClient.js"
import type { Grant, ServerMetadata, TokenEndpoint, TokenResponse } from "../TokenEndpoint.js"
import {
  InvalidTokenResponse,
  type Operation,
  type TokenEndpointError,
  TokenEndpointTimeout,
  TokenEndpointUnavailable,
  TokenRequestRejected
} from "../TokenError.js"

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

const clientAuth = (client: TokenClientLike): oidc.ClientAuth => {
  // The secret is unwrapped here, for the header or form body of this one request.
  const secret = client.clientSecret === undefined ? undefined : Redacted.value(client.clientSecret)
  switch (client.authentication) {
    case "client_secret_basic":
      return oidc.ClientSecretBasic(secret)
    case "client_secret_post":
      return oidc.ClientSecretPost(secret)
    case "none":
      return oidc.None()
  }
}

/** A fetch that is aborted with the Effect fiber that issued it. */
const fetchWith = (signal: AbortSignal): oidc.CustomFetch => (url, options) =>
  fetch(url, { ...options, signal: options.signal ? AbortSignal.any([signal, options.signal]) : signal } as RequestInit)

const configuration = (client: TokenClientLike, metadata: ServerMetadata, signal: AbortSignal) => {
  const config = new oidc.Configuration(metadata as oidc.ServerMetadata, client.clientId, {}, clientAuth(client))
  config.timeout = 0 // the Effect timeout governs, so that a timeout is a typed error and not an abort
  config[oidc.customFetch] = fetchWith(signal)
  if (allowsInsecure(client)) oidc.allowInsecureRequests(config)
  return config
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

/** Maps whatever openid-client threw to a typed error, without copying any response body (it may hold tokens). */
const mapError =
  (client: TokenClientLike, operation: Operation, endpoint: string) => (error: unknown): TokenEndpointError => {
    const base = { operation, clientId: client.clientId, endpoint }
    if (error instanceof oidc.ResponseBodyError) {
      return error.status >= 500
        ? new TokenEndpointUnavailable({ ...base, status: error.status, reason: `server error "${error.error}"` })
        : new TokenRequestRejected({
          ...base,
          status: error.status,
          error: error.error,
          ...(error.error_description ? { errorDescription: error.error_description } : {})
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
          : {})
      })
    }
    if (error instanceof oidc.ClientError) {
      const response = error.cause instanceof Response ? error.cause : undefined
      if (response !== undefined && response.status >= 500) {
        return new TokenEndpointUnavailable({ ...base, status: response.status, reason: "server error" })
      }
      if (error.code === "OAUTH_ABORT" || error.code === "OAUTH_TIMEOUT") {
        return new TokenEndpointUnavailable({ ...base, reason: "request aborted" })
      }
      const status = response === undefined ? "" : ` (HTTP ${response.status})`
      return new InvalidTokenResponse({ ...base, reason: `${error.message}${status} [${error.code ?? "no code"}]` })
    }
    return new TokenEndpointUnavailable({ ...base, reason: describeCause(error) })
  }

const isString = (u: unknown): u is string => typeof u === "string" && u.length > 0

/** @internal */
export const decodeResponse = (
  client: TokenClientLike,
  operation: Operation,
  endpoint: string,
  response: RawTokenResponse,
  now: number,
  defaultLifetime: Duration.Duration
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
    accessToken: new AccessToken({
      accessToken: Redacted.make(response.access_token),
      tokenType: tokenType === "dpop" ? "DPoP" : "Bearer",
      issuedAt: now,
      expiresAt: now + lifetimeMillis,
      ...(isString(response.scope) ? { scope: response.scope } : {})
    }),
    ...(isString(response.refresh_token) ? { refreshToken: Redacted.make(response.refresh_token) } : {}),
    ...(isString(response.id_token) ? { idToken: Redacted.make(response.id_token) } : {})
  })
}

/** @internal */
export const make = (options?: {
  readonly timeout?: Duration.DurationInput | undefined
  readonly defaultLifetime?: Duration.DurationInput | undefined
  readonly metadataTimeToLive?: Duration.DurationInput | undefined
}): Effect.Effect<TokenEndpoint["Type"]> =>
  Effect.gen(function*() {
    const timeout = Duration.decode(options?.timeout ?? Duration.seconds(10))
    const defaultLifetime = Duration.decode(options?.defaultLifetime ?? Duration.minutes(5))
    const metadataTimeToLive = Duration.decode(options?.metadataTimeToLive ?? Duration.hours(1))

    /** Runs one openid-client call: interruptible, timed out, and with its failures typed. */
    const call = <A>(
      client: TokenClientLike,
      operation: Operation,
      endpoint: string,
      f: (signal: AbortSignal) => Promise<A>
    ): Effect.Effect<A, TokenEndpointError> =>
      Effect.tryPromise({ try: f, catch: mapError(client, operation, endpoint) }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new TokenEndpointTimeout({
              operation,
              clientId: client.clientId,
              endpoint,
              timeoutMillis: Duration.toMillis(timeout)
            })
        })
      )

    const discovered = yield* Cache.makeWith({
      capacity: 256,
      lookup: (key: string) => {
        const [issuer, clientId] = JSON.parse(key) as [string, string]
        const client = { clientId, issuer, authentication: "none", allowInsecureRequests: false } as const
        return call(client, "discovery", issuer, (signal) =>
          oidc.discovery(new URL(issuer), clientId, undefined, undefined, {
            [oidc.customFetch]: fetchWith(signal),
            timeout: Duration.toSeconds(timeout),
            ...(allowsInsecure(client) ? { execute: [oidc.allowInsecureRequests] } : {})
          })).pipe(Effect.map((config): ServerMetadata =>
            config.serverMetadata()
          ))
      },
      // failures are never remembered: the next call discovers again
      timeToLive: (exit) =>
        Exit.isSuccess(exit) ? metadataTimeToLive : Duration.zero
    })

    const metadata = (client: TokenClientLike): Effect.Effect<ServerMetadata, TokenEndpointError> =>
      client.tokenEndpoint !== undefined
        ? Effect.succeed({
          issuer: client.issuer ?? new URL(client.tokenEndpoint).origin,
          token_endpoint: client.tokenEndpoint,
          ...(client.revocationEndpoint ? { revocation_endpoint: client.revocationEndpoint } : {})
        })
        : discovered.get(JSON.stringify([client.issuer, client.clientId]))

    const request = (client: TokenClientLike, grant: Grant): Effect.Effect<TokenResponse, TokenEndpointError> => {
      const operation: Operation = grant._tag === "ClientCredentials" ? "client_credentials" : "refresh_token"
      return Effect.gen(function*() {
        const server = yield* metadata(client)
        const endpoint = server.token_endpoint ?? endpointOf(client)
        const form = toFormParameters(grant.options)
        const raw = yield* call(client, operation, endpoint, (signal) => {
          const config = configuration(client, server, signal)
          return grant._tag === "ClientCredentials"
            ? oidc.clientCredentialsGrant(config, form)
            : oidc.refreshTokenGrant(config, Redacted.value(grant.refreshToken), form)
        })
        const now = yield* Clock.currentTimeMillis
        return yield* decodeResponse(client, operation, endpoint, raw, now, defaultLifetime)
      }).pipe(
        Effect.withSpan("TokenEndpoint.request", {
          kind: "client",
          attributes: { "oauth.grant_type": operation, "oauth.client_id": client.clientId }
        })
      )
    }

    const revoke = (client: TokenClientLike, token: Redacted.Redacted<string>, hint: string) =>
      Effect.gen(function*() {
        const server = yield* metadata(client)
        const endpoint = server.revocation_endpoint
        if (endpoint === undefined) {
          return
        }
        yield* call(client, "revocation", endpoint, (signal) =>
          oidc.tokenRevocation(configuration(client, server, signal), Redacted.value(token), {
            token_type_hint: hint
          }))
      }).pipe(
        Effect.withSpan("TokenEndpoint.revoke", {
          kind: "client",
          attributes: { "oauth.client_id": client.clientId, "oauth.token_type_hint": hint }
        })
      )

    const decode = (client: TokenClientLike, operation: Operation, response: RawTokenResponse) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) =>
          decodeResponse(client, operation, endpointOf(client), response, now, defaultLifetime)
      )

    return { request, revoke, metadata, decode }
  })
