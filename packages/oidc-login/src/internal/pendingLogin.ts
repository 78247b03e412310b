/**
 * A sign-in in progress lives in the pre-login cookie itself, sealed (AES-256-GCM, a key derived from the session
 * secret): nothing is stored on the server, so anonymous `/login` requests cost the caller, not the users whose
 * sign-ins are under way. The `state` in the authorization response must match the one in the cookie, which binds
 * the sign-in to the browser that started it; the cookie's own expiry is sealed in it.
 */
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"

/** What the callback must check (state, nonce), prove (the PKCE verifier), and where the browser goes afterwards. */
export interface PendingLogin {
  readonly state: string
  readonly nonce: Redacted.Redacted<string>
  readonly codeVerifier: Redacted.Redacted<string>
  /** A path on this site (never another origin). */
  readonly returnTo: string
  /** The resource the sign-in asked for, under which its access token is stored. */
  readonly resource?: string | undefined
  readonly expiresAt: number
}

const version = "v1"
const info = "effect-atm/oidc-login pending login v1"
const keys = new Map<string, Buffer>()

/** The sealing key of a secret: HKDF-SHA256, so the cookie-signing secret itself never encrypts. */
const keyOf = (secret: string): Buffer => {
  let key = keys.get(secret)
  if (key === undefined) {
    key = Buffer.from(Crypto.hkdfSync("sha256", secret, "", info, 32))
    if (keys.size > 16) keys.clear()
    keys.set(secret, key)
  }
  return key
}

/** `v1.<iv>.<ciphertext ‖ tag>`, base64url; `aad` (the cookie name) binds it to where it is sent. */
export const seal = (secret: string, aad: string, pending: PendingLogin): string => {
  const iv = Crypto.randomBytes(12)
  const cipher = Crypto.createCipheriv("aes-256-gcm", keyOf(secret), iv)
  cipher.setAAD(Buffer.from(aad))
  const json = JSON.stringify({
    s: pending.state,
    n: Redacted.value(pending.nonce),
    v: Redacted.value(pending.codeVerifier),
    r: pending.returnTo,
    ...(pending.resource === undefined ? {} : { u: pending.resource }),
    e: pending.expiresAt
  })
  const sealed = Buffer.concat([cipher.update(json, "utf8"), cipher.final(), cipher.getAuthTag()])
  return `${version}.${iv.toString("base64url")}.${sealed.toString("base64url")}`
}

/** Why a pre-login cookie does not open. */
export type Refusal = "invalid-cookie" | "expired-or-used"

const isString = (u: unknown): u is string => typeof u === "string"

/** The sign-in in a pre-login cookie, or why not: malformed, sealed under no configured secret, or expired. */
export const open = (
  secrets: ReadonlyArray<string>,
  aad: string,
  value: string,
  now: number
): PendingLogin | Refusal => {
  const [v, ivText, sealedText, ...rest] = value.split(".")
  if (v !== version || ivText === undefined || sealedText === undefined || rest.length > 0) return "invalid-cookie"
  const iv = Buffer.from(ivText, "base64url")
  const sealed = Buffer.from(sealedText, "base64url")
  if (iv.length !== 12 || sealed.length < 17) return "invalid-cookie"
  for (const secret of secrets) {
    try {
      const decipher = Crypto.createDecipheriv("aes-256-gcm", keyOf(secret), iv)
      decipher.setAAD(Buffer.from(aad))
      decipher.setAuthTag(sealed.subarray(sealed.length - 16))
      const json = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()])
      const body = JSON.parse(json.toString("utf8")) as Record<string, unknown>
      if (
        !isString(body.s) || !isString(body.n) || !isString(body.v) || !isString(body.r) ||
        typeof body.e !== "number" || (body.u !== undefined && !isString(body.u))
      ) return "invalid-cookie"
      if (body.e <= now) return "expired-or-used"
      return {
        state: body.s,
        nonce: Redacted.make(body.n),
        codeVerifier: Redacted.make(body.v),
        returnTo: body.r,
        ...(body.u === undefined ? {} : { resource: body.u }),
        expiresAt: body.e
      }
    } catch {
      // not this secret: try the next one
    }
  }
  return "invalid-cookie"
}
