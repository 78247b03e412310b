import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Crypto from "node:crypto"
import type { Codec, KeyInput, Options, TokenEncryption } from "../TokenEncryption.js"
import { InvalidEncryptionKey, TokenDecryptionError } from "../TokenEncryption.js"

// atm1.<key id>.<iv>.<ciphertext + tag>, base64url; the version prefix leaves room for other formats
const prefix = "atm1."
const ivBytes = 12
const tagBytes = 16
const keyIdPattern = /^[A-Za-z0-9_-]{1,64}$/
const base64Pattern = /^[A-Za-z0-9+/]*={0,2}$/

/** @internal */
export const isSealed = (value: string): boolean => value.startsWith(prefix)

/** @internal */
export const generateKey = (): Redacted.Redacted<string> => Redacted.make(Crypto.randomBytes(32).toString("base64"))

const deriveKeyId = (key: Buffer): string =>
  Crypto.createHmac("sha256", key).update("effect-atm/token-encryption/key-id").digest("base64url").slice(0, 11)

const decodeKey = (field: string, input: KeyInput): Effect.Effect<{ id: string; key: Buffer }, InvalidEncryptionKey> =>
  Effect.suspend(() => {
    const fail = (reason: string) => Effect.fail(new InvalidEncryptionKey({ field, reason }))
    const text = Redacted.value(input.key).trim()
    if (!base64Pattern.test(text) || text.length % 4 !== 0) return fail("it is not base64")
    const key = Buffer.from(text, "base64")
    if (key.length !== 32) return fail(`it is ${key.length} bytes long, AES-256 needs 32`)
    const id = input.id ?? deriveKeyId(key)
    if (!keyIdPattern.test(id)) return fail("its id must be 1 to 64 letters, digits, '-' or '_'")
    return Effect.succeed({ id, key })
  })

const aad = (keyId: string, context: string) => Buffer.from(`${keyId}\u0000${context}`, "utf8")

/** @internal */
export const make = (options: Options): Effect.Effect<TokenEncryption["Type"], InvalidEncryptionKey> =>
  Effect.gen(function*() {
    const current = yield* decodeKey("key", options.key)
    const keys = new Map<string, Buffer>([[current.id, current.key]])
    const previous = options.previousKeys ?? []
    for (let i = 0; i < previous.length; i++) {
      const field = `previousKeys[${i}]`
      const { id, key } = yield* decodeKey(field, previous[i]!)
      const known = keys.get(id)
      if (known !== undefined && !known.equals(key)) {
        return yield* new InvalidEncryptionKey({ field, reason: `its id "${id}" is already used by another key` })
      }
      keys.set(id, key)
    }

    const encrypt = (plaintext: string, context: string) =>
      Effect.sync(() => {
        const iv = Crypto.randomBytes(ivBytes)
        const cipher = Crypto.createCipheriv("aes-256-gcm", current.key, iv, { authTagLength: tagBytes })
        cipher.setAAD(aad(current.id, context))
        const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()])
        return `${prefix}${current.id}.${iv.toString("base64url")}.${body.toString("base64url")}`
      })

    const decrypt = (sealed: string, context: string) =>
      Effect.suspend(() => {
        const parts = sealed.split(".")
        if (parts.length !== 4 || `${parts[0]}.` !== prefix) {
          return Effect.fail(new TokenDecryptionError({ reason: "malformed" }))
        }
        const [, keyId, ivText, bodyText] = parts as [string, string, string, string]
        const key = keys.get(keyId)
        if (key === undefined) return Effect.fail(new TokenDecryptionError({ reason: "unknown-key", keyId }))
        const iv = Buffer.from(ivText, "base64url")
        const body = Buffer.from(bodyText, "base64url")
        if (iv.length !== ivBytes || body.length < tagBytes) {
          return Effect.fail(new TokenDecryptionError({ reason: "malformed", keyId }))
        }
        try {
          const decipher = Crypto.createDecipheriv("aes-256-gcm", key, iv, { authTagLength: tagBytes })
          decipher.setAAD(aad(keyId, context))
          decipher.setAuthTag(body.subarray(body.length - tagBytes))
          const plain = Buffer.concat([decipher.update(body.subarray(0, body.length - tagBytes)), decipher.final()])
          return Effect.succeed(plain.toString("utf8"))
        } catch {
          return Effect.fail(new TokenDecryptionError({ reason: "authentication-failed", keyId }))
        }
      })

    return { keyId: current.id, encrypt, decrypt }
  })

const keyIdOf = (sealed: string): string | undefined => sealed.split(".")[1]

/**
 * The service of `TokenEncryption.layerPlaintext`: stores given it write plain JSON, and refuse sealed values
 * (they were written under a key this deployment no longer has).
 *
 * @internal
 */
export const plaintext: TokenEncryption["Type"] = {
  keyId: "plaintext",
  encrypt: (plaintext) => Effect.succeed(plaintext),
  decrypt: (sealed) =>
    isSealed(sealed)
      ? Effect.fail(
        new TokenDecryptionError({ reason: "unknown-key", ...(keyIdOf(sealed) ? { keyId: keyIdOf(sealed)! } : {}) })
      )
      : Effect.succeed(sealed)
}

/** @internal */
export const codec = <A, I>(
  schema: Schema.Schema<A, I>,
  service: TokenEncryption["Type"] | undefined
): Codec<A> => {
  const encryption = service === plaintext ? undefined : service
  const encodeSync = Schema.encodeSync(schema)
  const decodeEither = Schema.decodeUnknownEither(schema)
  const malformed = Effect.fail(new TokenDecryptionError({ reason: "malformed" }))
  // the last values decoded, by context and stored text (decoding is deterministic; only successes are kept)
  const decoded = new Map<string, A>()
  const decodedCapacity = 4096
  // stores read on every token request: parsing stays synchronous, one Effect per value
  const parse = (json: string): Effect.Effect<A, TokenDecryptionError> => {
    let parsed: unknown
    try {
      parsed = JSON.parse(json)
    } catch {
      return malformed
    }
    const decoded = decodeEither(parsed)
    return Either.isRight(decoded) ? Effect.succeed(decoded.right) : malformed
  }
  return {
    encrypted: encryption !== undefined,
    encode: (value, context) =>
      Effect.suspend(() => {
        const json = JSON.stringify(encodeSync(value))
        return encryption === undefined ? Effect.succeed(json) : encryption.encrypt(json, context)
      }),
    decode: (stored, context) =>
      Effect.suspend(() => {
        // a stored value is read far more often than it is written: decode (and decrypt) each value once
        const memoKey = `${context}\u0000${stored}`
        const memoized = decoded.get(memoKey)
        if (memoized !== undefined) return Effect.succeed(memoized)
        const remember = (value: A) => {
          if (decoded.size >= decodedCapacity) decoded.delete(decoded.keys().next().value!)
          decoded.set(memoKey, value)
        }
        if (isSealed(stored)) {
          if (encryption === undefined) {
            const keyId = keyIdOf(stored)
            return Effect.fail(new TokenDecryptionError({ reason: "unknown-key", ...(keyId ? { keyId } : {}) }))
          }
          return Effect.flatMap(encryption.decrypt(stored, context), parse).pipe(Effect.tap(remember))
        }
        return encryption === undefined
          ? Effect.tap(parse(stored), remember)
          : Effect.fail(new TokenDecryptionError({ reason: "unencrypted" }))
      })
  }
}
