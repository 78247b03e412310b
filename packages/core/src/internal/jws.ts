/**
 * Compact JWS (RFC 7515) signed synchronously with `node:crypto`, for the JWTs made on a request's path: DPoP proofs
 * (one per API request) and client assertions (one per token request). jose and openid-client sign through
 * WebCrypto, asynchronous, whose `sign` runs on libuv's thread pool: on a busy host the hop there and back costs
 * more than the signature itself (bench/README.md, P11).
 */
import * as Crypto from "node:crypto"

/** @internal */
export type Algorithm =
  | "RS256"
  | "RS384"
  | "RS512"
  | "PS256"
  | "PS384"
  | "PS512"
  | "ES256"
  | "ES384"
  | "ES512"
  | "EdDSA"

/**
 * What signs the JWS of one key. Made once per key (the digest and the options of `Crypto.sign` chosen then) and
 * kept by its user, so that a JWS costs its signature and nothing per key.
 *
 * @internal
 */
export interface Signer {
  readonly alg: Algorithm | "HS256"
  /** base64url of the signature of a JWS signing input, `header.payload` */
  readonly sign: (input: string) => string
}

/**
 * The signer of a private key for an algorithm: the digest and the options of `Crypto.sign` for it (JWS wants ECDSA
 * signatures as r || s, not DER; PSS with a salt as long as the digest).
 *
 * @internal
 */
export const signer = (alg: Algorithm, key: Crypto.KeyObject): Signer => {
  const digest = alg === "EdDSA" ? null : `sha${alg.slice(2)}`
  let options: Crypto.SignKeyObjectInput
  switch (alg) {
    case "PS256":
    case "PS384":
    case "PS512":
      options = {
        key,
        padding: Crypto.constants.RSA_PKCS1_PSS_PADDING,
        saltLength: Crypto.constants.RSA_PSS_SALTLEN_DIGEST
      }
      break
    case "ES256":
    case "ES384":
    case "ES512":
      options = { key, dsaEncoding: "ieee-p1363" }
      break
    default:
      options = { key }
  }
  return { alg, sign: (input) => Crypto.sign(digest, Buffer.from(input, "utf8"), options).toString("base64url") }
}

/**
 * The HS256 signer of a shared secret (`client_secret_jwt`).
 *
 * @internal
 */
export const hmacSigner = (secret: string): Signer => ({
  alg: "HS256",
  sign: (input) => Crypto.createHmac("sha256", secret).update(input, "utf8").digest("base64url")
})

/**
 * base64url of a JSON value: a header (encode it once per key, it is the same for every JWS) or a payload.
 *
 * @internal
 */
export const encode = (value: unknown): string => Buffer.from(JSON.stringify(value), "utf8").toString("base64url")

/**
 * The compact JWS of a payload, under a header already encoded.
 *
 * @internal
 */
export const compact = (signer: Signer, header: string, payload: unknown): string => {
  const input = `${header}.${encode(payload)}`
  return `${input}.${signer.sign(input)}`
}
