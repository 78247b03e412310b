import * as Crypto from "node:crypto"

/** What a signed id is for: a session cookie never passes as a pre-login cookie, nor the reverse. */
export type Purpose = "session" | "login"

const idPattern = /^[A-Za-z0-9_-]{43}$/

/** A fresh 256-bit random id, base64url (43 characters). */
export const randomId = (): string => Crypto.randomBytes(32).toString("base64url")

/** A fresh 256-bit random secret for signing, when the application configures none. */
export const randomSecret = (): string => Crypto.randomBytes(32).toString("base64url")

const mac = (secret: string, purpose: Purpose, id: string): Buffer =>
  Crypto.createHmac("sha256", secret).update(`${purpose}\u0000${id}`).digest()

/** `<id>.<HMAC-SHA256(secret, purpose ‖ id)>`, both base64url. */
export const sign = (secret: string, purpose: Purpose, id: string): string =>
  `${id}.${mac(secret, purpose, id).toString("base64url")}`

/**
 * The id of a signed value, or `undefined` when the value is malformed or its signature does not verify under any
 * of the secrets (the first signs, the others are accepted while they are rotated out). No store is consulted.
 */
export const verify = (secrets: ReadonlyArray<string>, purpose: Purpose, value: string): string | undefined => {
  const dot = value.indexOf(".")
  if (dot !== 43) return undefined
  const id = value.slice(0, dot)
  if (!idPattern.test(id)) return undefined
  const given = Buffer.from(value.slice(dot + 1), "base64url")
  if (given.length !== 32 || given.toString("base64url") !== value.slice(dot + 1)) return undefined
  for (const secret of secrets) {
    if (Crypto.timingSafeEqual(given, mac(secret, purpose, id))) return id
  }
  return undefined
}
