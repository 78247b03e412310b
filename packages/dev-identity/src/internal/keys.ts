import * as Jose from "jose"

/** @internal */
export interface SigningKeys {
  /** private JWKS handed to oidc-provider */
  readonly privateJwks: { readonly keys: ReadonlyArray<Jose.JWK> }
  /** public JWKS, the same document the provider publishes at jwks_uri */
  readonly publicJwks: { readonly keys: ReadonlyArray<Jose.JWK> }
  readonly rs256: { readonly kid: string; readonly privateKey: CryptoKey }
  readonly es256: { readonly kid: string; readonly privateKey: CryptoKey }
}

const generateKey = async (alg: "RS256" | "ES256") => {
  const { privateKey, publicKey } = await Jose.generateKeyPair(alg, { extractable: true })
  const publicJwk = await Jose.exportJWK(publicKey)
  const kid = await Jose.calculateJwkThumbprint(publicJwk)
  const privateJwk = await Jose.exportJWK(privateKey)
  return {
    kid,
    privateKey,
    privateJwk: { ...privateJwk, kid, alg, use: "sig" },
    publicJwk: { ...publicJwk, kid, alg, use: "sig" }
  }
}

const generate = async (): Promise<SigningKeys> => {
  const [rs256, es256] = await Promise.all([generateKey("RS256"), generateKey("ES256")])
  return {
    privateJwks: { keys: [rs256.privateJwk, es256.privateJwk] },
    publicJwks: { keys: [rs256.publicJwk, es256.publicJwk] },
    rs256: { kid: rs256.kid, privateKey: rs256.privateKey },
    es256: { kid: es256.kid, privateKey: es256.privateKey }
  }
}

let cached: Promise<SigningKeys> | undefined

/**
 * The signing keys of every provider in this process. An RSA key takes up to half a second to generate and tests
 * start providers many times, so the keys are made once per process; each provider still has its own issuer (its
 * own port), so a token of one provider never verifies against another.
 *
 * @internal
 */
export const signingKeys = (): Promise<SigningKeys> => {
  if (cached === undefined) {
    cached = generate()
    cached.catch(() => {
      cached = undefined
    })
  }
  return cached
}
