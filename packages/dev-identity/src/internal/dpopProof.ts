import * as Crypto from "node:crypto"

/** What a resource server checks of a DPoP proof (RFC 9449 §4.3, §7.1), with node:crypto. */

const algorithms: Record<string, { readonly digest: string | null; readonly options: object }> = {
  ES256: { digest: "sha256", options: { dsaEncoding: "ieee-p1363" } },
  ES384: { digest: "sha384", options: { dsaEncoding: "ieee-p1363" } },
  ES512: { digest: "sha512", options: { dsaEncoding: "ieee-p1363" } },
  PS256: { digest: "sha256", options: { padding: Crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } },
  RS256: { digest: "sha256", options: {} },
  EdDSA: { digest: null, options: {} },
  Ed25519: { digest: null, options: {} }
}

/** @internal */
export const supportedAlgorithms = Object.keys(algorithms)

const thumbprintMembers: Record<string, ReadonlyArray<string>> = {
  EC: ["crv", "kty", "x", "y"],
  RSA: ["e", "kty", "n"],
  OKP: ["crv", "kty", "x"]
}

/** RFC 7638 JWK thumbprint (SHA-256). @internal */
export const thumbprint = (jwk: Record<string, unknown>): string => {
  const members = thumbprintMembers[String(jwk.kty)] ?? []
  const canonical = `{${members.map((m) => `"${m}":${JSON.stringify(jwk[m])}`).join(",")}}`
  return Crypto.createHash("sha256").update(canonical).digest("base64url")
}

/** @internal */
export const athOf = (token: string): string => Crypto.createHash("sha256").update(token).digest("base64url")

/** What a proof's protected header says, checked: the same for every proof of one key. */
type HeaderCheck =
  | {
    readonly _tag: "Valid"
    readonly algorithm: (typeof algorithms)[string]
    readonly key: Crypto.KeyObject
    readonly thumbprint: string
  }
  | { readonly _tag: "Invalid"; readonly description: string }

const checkHeader = (part: string): HeaderCheck => {
  const header = decodePart(part)
  if (header === undefined) return { _tag: "Invalid", description: "the DPoP proof is not a valid JWT" }
  if (header.typ !== "dpop+jwt") return { _tag: "Invalid", description: "the DPoP proof's typ is not dpop+jwt" }
  const algorithm = typeof header.alg === "string" && Object.hasOwn(algorithms, header.alg)
    ? algorithms[header.alg]
    : undefined
  if (algorithm === undefined) return { _tag: "Invalid", description: "the DPoP proof's alg is not accepted" }
  const jwk = header.jwk
  if (typeof jwk !== "object" || jwk === null) {
    return { _tag: "Invalid", description: "the DPoP proof has no jwk header" }
  }
  const publicJwk = jwk as Record<string, unknown>
  if ("d" in publicJwk) return { _tag: "Invalid", description: "the DPoP proof's jwk header holds a private key" }
  try {
    const key = Crypto.createPublicKey({ key: publicJwk as Crypto.JsonWebKey, format: "jwk" })
    return { _tag: "Valid", algorithm, key, thumbprint: thumbprint(publicJwk) }
  } catch {
    return { _tag: "Invalid", description: "the DPoP proof's jwk header is not a usable public key" }
  }
}

/**
 * Checked headers by their encoded form. A client encodes its header once per key, so every proof of that key
 * carries the same first segment: decoding it, checking it and importing its key is done once, not per request.
 */
const headers = new Map<string, HeaderCheck>()

const headerOf = (part: string): HeaderCheck => {
  let known = headers.get(part)
  if (known === undefined) {
    known = checkHeader(part)
    if (headers.size >= 1024) headers.delete(headers.keys().next().value!)
    headers.set(part, known)
  }
  return known
}

/** The last access token seen and its `ath`: a client sends one token many times over. */
let lastAth = { token: "", ath: athOf("") }

const athOfCached = (token: string): string => {
  if (lastAth.token !== token) lastAth = { token, ath: athOf(token) }
  return lastAth.ath
}

/** @internal */
export type ProofCheck =
  | { readonly _tag: "Valid"; readonly jti: string; readonly iat: number; readonly nonce: string | undefined }
  | { readonly _tag: "Invalid"; readonly description: string }

const invalid = (description: string): ProofCheck => ({ _tag: "Invalid", description })

const decodePart = (part: string): Record<string, unknown> | undefined => {
  try {
    const value = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as unknown
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : undefined
  } catch {
    return undefined
  }
}

const normalizedUrl = (value: string): string | undefined => {
  const url = URL.parse(value)
  if (url === null) return undefined
  url.search = ""
  url.hash = ""
  return url.href
}

/**
 * Checks a proof for a request: its form and signature, `htm`, `htu` (without query and fragment), `iat` within
 * `windowSeconds` of `now`, `ath` of the token, and the proof key's thumbprint against the token's `cnf.jkt`. The
 * `jti` replay check and the nonce check are the caller's, who keeps state.
 *
 * @internal
 */
export const checkProof = (proof: string, expected: {
  readonly method: string
  readonly url: string
  readonly accessToken: string
  readonly jkt: string
  readonly now: number
  readonly windowSeconds: number
}): ProofCheck => {
  const parts = proof.split(".")
  if (parts.length !== 3) return invalid("the DPoP proof is not a JWS in compact form")
  const header = headerOf(parts[0]!)
  if (header._tag === "Invalid") return header
  const payload = decodePart(parts[1]!)
  if (payload === undefined) return invalid("the DPoP proof is not a valid JWT")
  let verified = false
  try {
    verified = Crypto.verify(
      header.algorithm.digest,
      Buffer.from(`${parts[0]}.${parts[1]}`),
      { key: header.key, ...header.algorithm.options } as Crypto.VerifyKeyObjectInput,
      Buffer.from(parts[2]!, "base64url")
    )
  } catch {
    verified = false
  }
  if (!verified) return invalid("the DPoP proof's signature is invalid")
  if (typeof payload.jti !== "string" || payload.jti.length < 8) return invalid("the DPoP proof has no usable jti")
  if (payload.htm !== expected.method) return invalid("the DPoP proof is for another HTTP method (htm)")
  if (
    typeof payload.htu !== "string" ||
    // the same string is the same URL; otherwise both are compared normalized
    (payload.htu !== expected.url && normalizedUrl(payload.htu) !== normalizedUrl(expected.url))
  ) {
    return invalid("the DPoP proof is for another URL (htu)")
  }
  if (typeof payload.iat !== "number" || Math.abs(expected.now - payload.iat) > expected.windowSeconds) {
    return invalid("the DPoP proof's iat is not recent enough")
  }
  if (payload.ath !== athOfCached(expected.accessToken)) {
    return invalid("the DPoP proof is for another access token (ath)")
  }
  if (header.thumbprint !== expected.jkt) return invalid("the DPoP proof key is not the key the token is bound to")
  if (payload.nonce !== undefined && typeof payload.nonce !== "string") {
    return invalid("the DPoP proof's nonce is not a string")
  }
  return { _tag: "Valid", jti: payload.jti, iat: payload.iat, nonce: payload.nonce }
}
