import { assert, describe, it } from "@effect/vitest"
import * as Jose from "jose"
import * as Crypto from "node:crypto"
import { athOf, checkProof, thumbprint } from "../src/internal/dpopProof.js"

// proofs made by jose, independently of @effect-atm/core's fast path
const proofKey = async (algorithm: "ES256" | "EdDSA") => {
  const { privateKey, publicKey } = await Jose.generateKeyPair(algorithm, { extractable: true })
  const jwk = await Jose.exportJWK(publicKey)
  return {
    jkt: thumbprint(jwk as Record<string, unknown>),
    sign: (claims: Record<string, unknown>) =>
      new Jose.SignJWT({ jti: Crypto.randomUUID(), ...claims })
        .setProtectedHeader({ typ: "dpop+jwt", alg: algorithm, jwk })
        .sign(privateKey)
  }
}

const url = "http://127.0.0.1:4000/data"
const now = Math.floor(Date.now() / 1000)
const expected = (accessToken: string, jkt: string) => ({
  method: "GET",
  url,
  accessToken,
  jkt,
  now,
  windowSeconds: 60
})

describe("checkProof", () => {
  it("what is remembered per key (its header) and per token (its ath) never stands in for a check", async () => {
    const key = await proofKey("ES256")
    const first = await key.sign({ htm: "GET", htu: url, iat: now, ath: athOf("token-a") })
    assert.strictEqual(checkProof(first, expected("token-a", key.jkt))._tag, "Valid")
    const second = await key.sign({ htm: "GET", htu: `${url}?page=2`, iat: now, ath: athOf("token-a") })
    assert.strictEqual(checkProof(second, expected("token-a", key.jkt))._tag, "Valid", "htu without its query")

    // the same header (key) with another proof's signature: the signature is checked every time
    const [header, payload] = second.split(".")
    const spliced = `${header}.${payload}.${first.split(".")[2]}`
    assert.deepStrictEqual(checkProof(spliced, expected("token-a", key.jkt)), {
      _tag: "Invalid",
      description: "the DPoP proof's signature is invalid"
    })
    // the ath of the token seen last is not the ath of another token
    assert.deepStrictEqual(checkProof(first, expected("token-b", key.jkt)), {
      _tag: "Invalid",
      description: "the DPoP proof is for another access token (ath)"
    })
    // a known key is still held to the token's cnf.jkt
    const other = await proofKey("ES256")
    assert.deepStrictEqual(checkProof(first, expected("token-a", other.jkt)), {
      _tag: "Invalid",
      description: "the DPoP proof key is not the key the token is bound to"
    })
    const elsewhere = await key.sign({
      htm: "GET",
      htu: "http://127.0.0.1:4000/other",
      iat: now,
      ath: athOf("token-a")
    })
    assert.deepStrictEqual(checkProof(elsewhere, expected("token-a", key.jkt)), {
      _tag: "Invalid",
      description: "the DPoP proof is for another URL (htu)"
    })
  })

  it("a refused header is refused again, and other algorithms are checked alike", async () => {
    const key = await proofKey("EdDSA")
    const proof = await key.sign({ htm: "GET", htu: url, iat: now, ath: athOf("token-c") })
    assert.strictEqual(checkProof(proof, expected("token-c", key.jkt))._tag, "Valid")
    const [, payload, signature] = proof.split(".")
    const bad = Buffer.from(JSON.stringify({ typ: "JWT", alg: "EdDSA" })).toString("base64url")
    for (let i = 0; i < 2; i++) {
      assert.deepStrictEqual(checkProof(`${bad}.${payload}.${signature}`, expected("token-c", key.jkt)), {
        _tag: "Invalid",
        description: "the DPoP proof's typ is not dpop+jwt"
      })
    }
  })
})
