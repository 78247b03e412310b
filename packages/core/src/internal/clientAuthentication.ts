/**
 * How a client proves who it is at the token and revocation endpoints: openid-client's `ClientAuth` for each
 * request, made from the client's configuration. The one place that unwraps client secrets and private keys.
 */
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as oidc from "openid-client"
import type { SigningAlgorithm, TokenClientLike } from "../TokenClient.js"
import * as Jws from "./jws.js"

type Problem = { readonly field: string; readonly reason: string } | undefined

const curveAlgorithms: Record<string, SigningAlgorithm> = {
  prime256v1: "ES256",
  secp384r1: "ES384",
  secp521r1: "ES512"
}

interface ParsedKey {
  readonly key: Crypto.KeyObject
  readonly kid: string | undefined
}

/** A private key from a JWK (JSON) or a PEM; throws with a reason that never contains the key. */
const parsePrivateKey = (text: string): ParsedKey => {
  const trimmed = text.trim()
  if (trimmed.startsWith("{")) {
    let jwk: Crypto.JsonWebKey
    try {
      jwk = JSON.parse(trimmed) as Crypto.JsonWebKey
    } catch {
      throw new Error("is not valid JSON (a JWK) nor a PEM")
    }
    if (typeof jwk.d !== "string") throw new Error("is a public JWK: the private key (with \"d\") is needed")
    try {
      return {
        key: Crypto.createPrivateKey({ key: jwk, format: "jwk" }),
        kid: typeof jwk.kid === "string" ? jwk.kid : undefined
      }
    } catch {
      throw new Error("is not a usable private JWK")
    }
  }
  try {
    return { key: Crypto.createPrivateKey(trimmed), kid: undefined }
  } catch {
    throw new Error("is not a private key in PEM (PKCS#8, PKCS#1 or SEC1) nor a JWK")
  }
}

const algorithmsFor = (key: Crypto.KeyObject): ReadonlyArray<SigningAlgorithm> => {
  switch (key.asymmetricKeyType) {
    case "rsa":
      return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    case "ec": {
      const alg = curveAlgorithms[key.asymmetricKeyDetails?.namedCurve ?? ""]
      return alg === undefined ? [] : [alg]
    }
    case "ed25519":
      return ["EdDSA"]
    default:
      return []
  }
}

/**
 * Cross-field checks of a client's authentication: the secret or key it needs is there, and a private key is one
 * the library can sign with.
 *
 * @internal
 */
export const check = (client: TokenClientLike): Problem => {
  const method = client.authentication
  const requires = (field: string) => ({ field, reason: `is required with authentication "${method}"` })
  switch (method) {
    case "client_secret_basic":
    case "client_secret_basic_unencoded":
    case "client_secret_post":
    case "client_secret_jwt":
      if (client.clientSecret === undefined) return requires("clientSecret")
      break
    case "private_key_jwt": {
      if (client.privateKey === undefined) return requires("privateKey")
      let parsed: ParsedKey
      try {
        parsed = parsePrivateKey(Redacted.value(client.privateKey))
      } catch (error) {
        return { field: "privateKey", reason: `${(error as Error).message} (the value is not shown)` }
      }
      const algorithms = algorithmsFor(parsed.key)
      if (algorithms.length === 0) {
        return {
          field: "privateKey",
          reason: `is a ${parsed.key.asymmetricKeyType ?? "unknown"} key; use an RSA, EC (P-256, P-384, P-521) or ` +
            "Ed25519 key"
        }
      }
      if (client.signingAlgorithm !== undefined && !algorithms.includes(client.signingAlgorithm)) {
        return {
          field: "signingAlgorithm",
          reason: `${client.signingAlgorithm} does not fit the private key (it fits ${algorithms.join(", ")})`
        }
      }
      break
    }
    case "tls_client_auth":
    case "self_signed_tls_client_auth":
      break
    case "none":
      break
  }
  if ((client.clientCertificate === undefined) !== (client.clientCertificateKey === undefined)) {
    return client.clientCertificate === undefined
      ? { field: "clientCertificate", reason: "is required with clientCertificateKey" }
      : { field: "clientCertificateKey", reason: "is required with clientCertificate" }
  }
  if (requiresMutualTls(client) && client.clientCertificate === undefined) return requires("clientCertificate")
  if (client.clientCertificate !== undefined && client.clientCertificateKey !== undefined) {
    try {
      const certificate = new Crypto.X509Certificate(Redacted.value(client.clientCertificate))
      if (!certificate.checkPrivateKey(Crypto.createPrivateKey(Redacted.value(client.clientCertificateKey)))) {
        return { field: "clientCertificateKey", reason: "is not the private key of clientCertificate" }
      }
    } catch {
      return {
        field: "clientCertificate",
        reason: "clientCertificate must be an X.509 certificate in PEM and clientCertificateKey its private key in " +
          "PEM (the values are not shown)"
      }
    }
  }
  return undefined
}

/**
 * Whether the client's requests to the provider go over a TLS connection that presents its certificate.
 *
 * @internal
 */
export const requiresMutualTls = (client: TokenClientLike): boolean =>
  client.authentication === "tls_client_auth" || client.authentication === "self_signed_tls_client_auth"

interface AssertionKey {
  readonly alg: SigningAlgorithm
  readonly kid: string | undefined
  /** The encoded JWS header: the same for every assertion of the key. */
  readonly header: string
  readonly signer: Jws.Signer
}

/** Per configured key: the key is parsed and the header encoded once per client, not per request. */
const assertionKeys = new WeakMap<Redacted.Redacted<string>, AssertionKey>()

const assertionKeyOf = (client: TokenClientLike, privateKey: Redacted.Redacted<string>): AssertionKey => {
  const known = assertionKeys.get(privateKey)
  if (
    known !== undefined && (client.signingAlgorithm === undefined || known.alg === client.signingAlgorithm) &&
    (client.privateKeyId === undefined || known.kid === client.privateKeyId)
  ) return known
  const parsed = parsePrivateKey(Redacted.value(privateKey))
  const alg = client.signingAlgorithm ?? algorithmsFor(parsed.key)[0]!
  const kid = client.privateKeyId ?? parsed.kid
  const key: AssertionKey = { alg, kid, header: Jws.encode({ alg, kid }), signer: Jws.signer(alg, parsed.key) }
  assertionKeys.set(privateKey, key)
  return key
}

/**
 * A client assertion (RFC 7523 §2.2), signed synchronously with `node:crypto` (internal/jws.ts). openid-client's
 * `PrivateKeyJwt` and `ClientSecretJwt` sign through WebCrypto, whose `sign` runs on libuv's thread pool: on a busy
 * host the hop there and back costs more than the signature itself (ES256: 40–57 µs of CPU here against 133–220 µs
 * through WebCrypto, bench/README.md, P11). The claims are openid-client's: `jti`, `aud`, `exp` (60 s), `iat`,
 * `nbf`, `iss`, `sub`, with its clock skew.
 */
const clientAssertion = (
  audience: string | undefined,
  key: () => Pick<AssertionKey, "header" | "signer">
): oidc.ClientAuth =>
(as, oauthClient, body) => {
  const { header, signer } = key()
  const skew = oauthClient[oidc.clockSkew]
  const now = Math.floor(Date.now() / 1000) + (typeof skew === "number" && Number.isFinite(skew) ? skew : 0)
  body.set("client_id", oauthClient.client_id)
  body.set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
  body.set(
    "client_assertion",
    Jws.compact(signer, header, {
      // unique per assertion, which is all RFC 7523 asks; `randomUUID` draws from a cached entropy pool
      jti: Crypto.randomUUID(),
      aud: audience ?? as.issuer,
      exp: now + 60,
      iat: now,
      nbf: now,
      iss: oauthClient.client_id,
      sub: oauthClient.client_id
    })
  )
}

const hs256Header = Jws.encode({ alg: "HS256" })

/** `client_secret_basic` without the form-encoding of RFC 6749 §2.3.1, for providers that do not decode it. */
const clientSecretBasicUnencoded = (secret: string | undefined): oidc.ClientAuth => (_as, client, _body, headers) => {
  const credentials = Buffer.from(`${client.client_id}:${secret ?? ""}`, "utf8").toString("base64")
  headers.set("authorization", `Basic ${credentials}`)
}

/**
 * The audience of a client assertion: the issuer (RFC 7523 §3 allows it, and openid-client's default), or the token
 * endpoint when no issuer is configured (the origin stands in for the issuer then, and a provider would not accept
 * it as the audience).
 */
const assertionAudience = (client: TokenClientLike, tokenEndpoint: string | undefined): string | undefined =>
  client.issuer === undefined ? tokenEndpoint : undefined

/**
 * openid-client's `ClientAuth` for one request of `client`. Assertions are made when the request is made, so every
 * request and every retry carries a new one (`jti`, `iat`, `exp`).
 *
 * @internal
 */
export const clientAuth = (client: TokenClientLike, tokenEndpoint: string | undefined): oidc.ClientAuth => {
  // The secret is unwrapped here, for the header or form body of this one request.
  const secret = client.clientSecret === undefined ? undefined : Redacted.value(client.clientSecret)
  switch (client.authentication) {
    case "client_secret_basic":
      return oidc.ClientSecretBasic(secret)
    case "client_secret_basic_unencoded":
      return clientSecretBasicUnencoded(secret)
    case "client_secret_post":
      return oidc.ClientSecretPost(secret)
    case "client_secret_jwt": {
      const hs256 = { header: hs256Header, signer: Jws.hmacSigner(secret ?? "") }
      return clientAssertion(assertionAudience(client, tokenEndpoint), () => hs256)
    }
    case "private_key_jwt": {
      const privateKey = client.privateKey!
      return clientAssertion(assertionAudience(client, tokenEndpoint), () => assertionKeyOf(client, privateKey))
    }
    case "tls_client_auth":
    case "self_signed_tls_client_auth":
      return oidc.TlsClientAuth()
    case "none":
      return oidc.None()
  }
}
