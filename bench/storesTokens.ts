/** Realistic user tokens for the store benchmarks (P7, P8): JWT-sized access and ID tokens, an opaque refresh token. */
import { AccessToken, UserToken } from "@effect-atm/core"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"

export const resource = "urn:effect-atm:demo-api"
export const params = { resource } as const

const b64 = (bytes: number) => Crypto.randomBytes(bytes).toString("base64url")

/**
 * A flat (sequential) string, as a token parsed from a token endpoint response is; a template literal would leave
 * a rope of its parts, which is neither realistic nor the same size.
 */
export const flat = (value: string) => Buffer.from(value, "latin1").toString("latin1")

/** `<header>.<payload>.<RS256 signature>`: 36 + 1 + payload + 1 + 342 characters. */
const jwtLike = (payloadBytes: number) => flat(`${b64(27)}.${b64(payloadBytes)}.${b64(256)}`)

/** The three secrets of one user, as they come from the token endpoint: 800, 43 and 900 characters. */
export interface RawSecrets {
  readonly accessToken: string
  readonly refreshToken: string
  /** absent where the ID token is not kept with the user's tokens (`UserTokens`' default, see `keepIdToken`) */
  readonly idToken?: string | undefined
}

export const rawSecrets = (): RawSecrets => ({
  accessToken: jwtLike(315), // 800 characters
  refreshToken: b64(32), // 43 characters
  idToken: jwtLike(390) // 900 characters
})

/**
 * A user token as the library holds it after a login or refresh. `validate: false` skips the constructors' checks
 * (the objects are the same; P8 builds 100,000 of them and measures memory, not construction).
 */
export const userToken = (secrets: RawSecrets, now: number, validate = true): UserToken.UserToken =>
  new UserToken.UserToken({
    clientId: "web",
    accessToken: new AccessToken.AccessToken({
      accessToken: Redacted.make(secrets.accessToken),
      tokenType: "Bearer",
      issuedAt: now,
      expiresAt: now + 300_000,
      scope: "api.read api.write",
      resource
    }, !validate),
    refreshToken: Redacted.make(secrets.refreshToken),
    ...(secrets.idToken === undefined ? {} : { idToken: Redacted.make(secrets.idToken) })
  }, !validate)
