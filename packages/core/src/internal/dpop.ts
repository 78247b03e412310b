import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Jose from "jose"
import * as Crypto from "node:crypto"
import * as Jws from "./jws.js"

/** @internal */
export type Algorithm = "ES256" | "ES384" | "ES512" | "PS256" | "RS256" | "EdDSA"

/** A proof key ready to sign: loaded once per serialized key, then reused for every proof. */
interface LoadedKey {
  readonly algorithm: Algorithm
  readonly signer: Jws.Signer
  readonly publicJwk: Jose.JWK
  /** base64url of the protected header, the same for every proof of this key */
  readonly header: string
  /** RFC 7638 thumbprint of the public key: what a bound token's `cnf.jkt` holds */
  readonly thumbprint: string
  /** the WebCrypto pair openid-client signs token-request proofs with, made on first use */
  keyPair: Promise<CryptoKeyPair> | undefined
}

const privateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const
const thumbprintMembers: Record<string, ReadonlyArray<string>> = {
  EC: ["crv", "kty", "x", "y"],
  RSA: ["e", "kty", "n"],
  OKP: ["crv", "kty", "x"]
}

/** @internal */
export const thumbprintOf = (jwk: Jose.JWK): string => {
  const members = thumbprintMembers[jwk.kty ?? ""] ?? []
  const canonical = `{${members.map((m) => `"${m}":${JSON.stringify((jwk as Record<string, unknown>)[m])}`).join(",")}}`
  return Crypto.createHash("sha256").update(canonical).digest("base64url")
}

const loaded = new Map<string, LoadedKey>()
const loadedCapacity = 10_000

/**
 * The signing form of a serialized key (a private JWK with its `alg`, as JSON). Loading is synchronous and
 * remembered: proofs are made on the hot path of every request.
 *
 * @internal
 */
export const load = (key: Redacted.Redacted<string>): LoadedKey => {
  const serialized = Redacted.value(key)
  const known = loaded.get(serialized)
  if (known !== undefined) return known
  const jwk = JSON.parse(serialized) as Jose.JWK & { alg: Algorithm }
  const publicJwk: Record<string, unknown> = { ...jwk }
  for (const member of privateMembers) delete publicJwk[member]
  delete publicJwk.key_ops
  delete publicJwk.ext
  const result: LoadedKey = {
    algorithm: jwk.alg,
    signer: Jws.signer(jwk.alg, Crypto.createPrivateKey({ key: jwk as Crypto.JsonWebKey, format: "jwk" })),
    publicJwk: publicJwk as Jose.JWK,
    header: Jws.encode({ typ: "dpop+jwt", alg: jwk.alg, jwk: publicJwk }),
    thumbprint: thumbprintOf(publicJwk as Jose.JWK),
    keyPair: undefined
  }
  if (loaded.size >= loadedCapacity) loaded.delete(loaded.keys().next().value!)
  loaded.set(serialized, result)
  return result
}

/** @internal */
export const generate = (algorithm: Algorithm): Effect.Effect<Redacted.Redacted<string>> =>
  Effect.promise(async () => {
    const { privateKey } = await Jose.generateKeyPair(algorithm, { extractable: true })
    const jwk = await Jose.exportJWK(privateKey)
    return Redacted.make(JSON.stringify({ ...jwk, alg: algorithm }))
  })

/** The WebCrypto key pair of a key, for openid-client's DPoP handle. @internal */
export const keyPair = (key: LoadedKey, serialized: Redacted.Redacted<string>): Promise<CryptoKeyPair> =>
  key.keyPair ??= (async () => {
    const jwk = JSON.parse(Redacted.value(serialized)) as Jose.JWK
    const privateKey = await Jose.importJWK(jwk, key.algorithm, { extractable: false }) as CryptoKey
    const publicKey = await Jose.importJWK(key.publicJwk, key.algorithm, { extractable: true }) as CryptoKey
    return { privateKey, publicKey }
  })()

/** `htu`: the request URL without its query and fragment (RFC 9449 §4.2). @internal */
export const htuOf = (url: string): string => {
  const end = url.search(/[?#]/)
  return end === -1 ? url : url.slice(0, end)
}

const originPattern = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/

/** The origin a nonce is remembered for. @internal */
export const originOf = (url: string): string => (originPattern.exec(url)?.[0] ?? url).toLowerCase()

/** `ath`: base64url(SHA-256(access token)). @internal */
export const athOf = (accessToken: string): string =>
  Crypto.createHash("sha256").update(accessToken).digest("base64url")

const aths = new WeakMap<Redacted.Redacted<string>, string>()

/** `ath` of a token, computed once per token: every request with it needs the same. @internal */
export const athOfToken = (accessToken: Redacted.Redacted<string>): string => {
  let ath = aths.get(accessToken)
  if (ath === undefined) {
    ath = athOf(Redacted.value(accessToken))
    aths.set(accessToken, ath)
  }
  return ath
}

/**
 * A DPoP proof JWT (RFC 9449 §4.2): a fresh `jti` every time. Signed with node:crypto (internal/jws.ts) over a
 * header encoded once per key, rather than with jose's `SignJWT` (WebCrypto, asynchronous, about twice as slow per
 * proof): one proof is made per API request.
 *
 * @internal
 */
export const proof = (
  key: LoadedKey,
  claims: {
    readonly htm: string
    readonly htu: string
    readonly iat: number
    /** the access token's `ath` (see `athOfToken`) */
    readonly ath?: string | undefined
    readonly nonce?: string | undefined
  }
): string => {
  const payload: Record<string, unknown> = {
    jti: Crypto.randomUUID(),
    htm: claims.htm,
    htu: htuOf(claims.htu),
    iat: claims.iat
  }
  if (claims.ath !== undefined) payload.ath = claims.ath
  if (claims.nonce !== undefined) payload.nonce = claims.nonce
  return Jws.compact(key.signer, key.header, payload)
}

/**
 * Server nonces (RFC 9449 §8, §9) remembered per origin: the last `DPoP-Nonce` an origin sent is put in the next
 * proof for it. Bounded: the least recently set origin is dropped first.
 *
 * @internal
 */
export class Nonces {
  private readonly byOrigin = new Map<string, string>()
  constructor(private readonly capacity = 1024) {}
  get(url: string): string | undefined {
    return this.byOrigin.size === 0 ? undefined : this.byOrigin.get(originOf(url))
  }
  set(url: string, nonce: string | undefined | null): void {
    if (nonce === undefined || nonce === null || nonce === "") return
    const origin = originOf(url)
    if (this.byOrigin.get(origin) === nonce) return
    this.byOrigin.delete(origin)
    if (this.byOrigin.size >= this.capacity) this.byOrigin.delete(this.byOrigin.keys().next().value!)
    this.byOrigin.set(origin, nonce)
  }
}

/** Whether a 401's `WWW-Authenticate` asks for a DPoP nonce (RFC 9449 §9). @internal */
export const isNonceChallenge = (wwwAuthenticate: string | undefined): boolean =>
  wwwAuthenticate !== undefined && /(^|,)\s*dpop\b/i.test(wwwAuthenticate) &&
  /error\s*=\s*"?use_dpop_nonce"?/i.test(wwwAuthenticate)
