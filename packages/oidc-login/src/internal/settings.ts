import * as TokenClient from "@effect-atm/core/TokenClient"
import type { InvalidClientConfiguration } from "@effect-atm/core/TokenError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { InvalidLoginConfiguration } from "../LoginError.js"
import type { Options, Settings } from "../OidcLogin.js"
import { randomSecret } from "./signedId.js"

const count = (field: string, value: number) =>
  Number.isSafeInteger(value) && value > 0
    ? Effect.succeed(value)
    : Effect.fail(new InvalidLoginConfiguration({ field, reason: "must be a positive whole number" }))

/** The settings, and the cookie-signing secrets (the first signs; all verify), kept out of `Settings`. @internal */
export interface Resolved extends Settings {
  readonly secrets: ReadonlyArray<string>
}

const loopbackHosts = new Set(["127.0.0.1", "localhost", "[::1]"])

/** @internal */
export const isLoopback = (url: URL): boolean => loopbackHosts.has(url.hostname)

const parseUrl = (field: string, value: string): Effect.Effect<URL, InvalidLoginConfiguration> => {
  const url = URL.parse(value)
  if (url === null || (url.protocol !== "https:" && url.protocol !== "http:")) {
    return Effect.fail(new InvalidLoginConfiguration({ field, reason: "must be an absolute http:// or https:// URL" }))
  }
  if (url.protocol === "http:" && !isLoopback(url)) {
    return Effect.fail(
      new InvalidLoginConfiguration({
        field,
        reason: "must be https:// outside loopback (127.0.0.1, localhost, [::1]): session cookies are Secure there"
      })
    )
  }
  return Effect.succeed(url)
}

const positive = (field: string, input: Duration.DurationInput) =>
  Effect.suspend(() => {
    const duration = Duration.decodeUnknown(input)
    return duration._tag === "Some" && Duration.toMillis(duration.value) > 0 &&
        Duration.isFinite(duration.value)
      ? Effect.succeed(Duration.toMillis(duration.value))
      : Effect.fail(new InvalidLoginConfiguration({ field, reason: "must be a positive, finite duration" }))
  })

const cookieNamePattern = /^[A-Za-z0-9_.-]{1,64}$/

/** Validates the options and derives everything the login needs from them. @internal */
export const resolve = (
  options: Options
): Effect.Effect<Resolved, InvalidLoginConfiguration | InvalidClientConfiguration> =>
  Effect.gen(function*() {
    const client = yield* TokenClient.decode(options.client)
    if (client.issuer === undefined) {
      return yield* new InvalidLoginConfiguration({
        field: "client.issuer",
        reason: "is required: sign-in discovers the authorization and end-session endpoints from it"
      })
    }
    const base = yield* parseUrl("baseUrl", options.baseUrl)
    const path = options.path ?? "/auth"
    if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@/-]*[^/]$/.test(path)) {
      return yield* new InvalidLoginConfiguration({
        field: "path",
        reason: "must start with \"/\", not end with \"/\" and be a plain URL path (e.g. \"/auth\")"
      })
    }
    const redirectUri = yield* parseUrl("redirectUri", options.redirectUri ?? new URL(`${path}/callback`, base).href)
    const postLogoutRedirectUri = yield* parseUrl(
      "postLogoutRedirectUri",
      options.postLogoutRedirectUri ?? new URL("/", base).href
    )
    const scope = options.scope ?? "openid profile email offline_access"
    if (!scope.split(" ").includes("openid")) {
      return yield* new InvalidLoginConfiguration({
        field: "scope",
        reason: "must include \"openid\" (sign-in needs an ID token); add \"offline_access\" for refresh tokens"
      })
    }
    const session = options.session ?? {}
    const secrets = [session.secret, ...(session.previousSecrets ?? [])]
      .filter((secret) => secret !== undefined)
      .map((secret) => Redacted.value(secret))
    for (const secret of secrets) {
      if (secret.length < 32) {
        return yield* new InvalidLoginConfiguration({
          field: "session.secret",
          reason: "must be at least 32 characters of random data (e.g. `openssl rand -base64 32`)"
        })
      }
    }
    if (session.secret === undefined) secrets.unshift(randomSecret())
    const secure = base.protocol === "https:"
    const cookieName = session.cookieName ?? "atm_session"
    const loginCookieName = session.loginCookieName ?? "atm_login"
    for (const [field, name] of [["session.cookieName", cookieName], ["session.loginCookieName", loginCookieName]]) {
      if (!cookieNamePattern.test(name!)) {
        return yield* new InvalidLoginConfiguration({
          field: field!,
          reason: "must be 1 to 64 letters, digits, dots, dashes or underscores"
        })
      }
    }
    return {
      client,
      issuer: client.issuer,
      origin: base.origin,
      path,
      loginPath: `${path}/login`,
      callbackPath: `${path}/callback`,
      logoutPath: `${path}/logout`,
      redirectUri: redirectUri.href,
      postLogoutRedirectUri: postLogoutRedirectUri.href,
      scope,
      resource: options.resource,
      parameters: options.parameters ?? {},
      secure,
      // "__Host-" binds the cookie to this host, over https, for every path: no subdomain can set or shadow it
      sessionCookie: secure ? `__Host-${cookieName}` : cookieName,
      loginCookie: secure ? `__Host-${loginCookieName}` : loginCookieName,
      secrets,
      idleTimeoutMillis: yield* positive("session.idleTimeout", session.idleTimeout ?? Duration.hours(1)),
      absoluteTimeoutMillis: yield* positive("session.absoluteTimeout", session.absoluteTimeout ?? Duration.hours(12)),
      connectionCheckMillis: yield* positive(
        "session.connectionCheckInterval",
        session.connectionCheckInterval ?? Duration.seconds(30)
      ),
      sweepIntervalMillis: yield* positive("session.sweepInterval", session.sweepInterval ?? Duration.minutes(1)),
      endSessionHint: options.endSessionHint ?? "id_token_hint",
      maxMessageBytes: yield* count("websocket.maxMessageBytes", options.websocket?.maxMessageBytes ?? 65_536),
      maxConnectionsPerSession: yield* count(
        "websocket.maxConnectionsPerSession",
        options.websocket?.maxConnectionsPerSession ?? 10
      ),
      loginTimeoutMillis: yield* positive("loginTimeout", options.loginTimeout ?? Duration.minutes(10)),
      timeoutMillis: yield* positive("timeout", options.timeout ?? Duration.seconds(10))
    } satisfies Resolved
  })
