import { AccessToken, TokenEncryption } from "@effect-atm/core"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { assertNoSecrets, renderings } from "../../../test/support/redaction.js"
import { keys } from "../../../test/support/stores.js"

const token = new AccessToken.AccessToken({
  accessToken: Redacted.make("eyJ-a-secret-access-token"),
  tokenType: "Bearer",
  issuedAt: 1_000,
  expiresAt: 301_000,
  resource: "urn:effect-atm:demo-api"
})

describe("TokenEncryption", () => {
  it.effect("seals with AES-256-GCM: a fresh IV each time, the key id beside the value, nothing in plain text", () =>
    Effect.gen(function*() {
      const encryption = yield* TokenEncryption.make({ key: { key: keys.a } })
      const one = yield* encryption.encrypt("a secret refresh token", "alice")
      const two = yield* encryption.encrypt("a secret refresh token", "alice")
      assert.notStrictEqual(one, two)
      assert.isTrue(TokenEncryption.isSealed(one))
      assert.strictEqual(one.split(".")[1], encryption.keyId)
      assert.notInclude(one, "secret")
      assert.strictEqual(yield* encryption.decrypt(one, "alice"), "a secret refresh token")
      // the id is derived from the key: the same key has the same id anywhere, another key another id
      assert.strictEqual((yield* TokenEncryption.make({ key: { key: keys.a } })).keyId, encryption.keyId)
      assert.notStrictEqual((yield* TokenEncryption.make({ key: { key: keys.b } })).keyId, encryption.keyId)
      assert.strictEqual((yield* TokenEncryption.make({ key: { key: keys.a, id: "2025-q1" } })).keyId, "2025-q1")
    }))

  it.effect("a value opens only with its key and its context, and unaltered", () =>
    Effect.gen(function*() {
      const a = yield* TokenEncryption.make({ key: { key: keys.a } })
      const sealed = yield* a.encrypt("refresh-token-of-alice", "user:alice")
      const reason = (effect: Effect.Effect<string, TokenEncryption.TokenDecryptionError>) =>
        Effect.map(Effect.flip(effect), (error) => error.reason)
      assert.strictEqual(yield* reason(a.decrypt(sealed, "user:mallory")), "authentication-failed")
      const flipped = sealed.slice(0, -2) + (sealed.at(-2) === "A" ? "B" : "A") + sealed.at(-1)
      assert.strictEqual(yield* reason(a.decrypt(flipped, "user:alice")), "authentication-failed")
      assert.strictEqual(yield* reason(a.decrypt("atm1.x.y", "user:alice")), "malformed")
      const b = yield* TokenEncryption.make({ key: { key: keys.b } })
      assert.strictEqual(yield* reason(b.decrypt(sealed, "user:alice")), "unknown-key")
      // same id, other key material: the tag does not verify
      const impostor = yield* TokenEncryption.make({ key: { key: keys.b, id: a.keyId } })
      assert.strictEqual(yield* reason(impostor.decrypt(sealed, "user:alice")), "authentication-failed")
    }))

  it.effect("rotation: new values under the current key, old ones still open under a previous key", () =>
    Effect.gen(function*() {
      const a = yield* TokenEncryption.make({ key: { key: keys.a } })
      const old = yield* a.encrypt("old", "c")
      const rotated = yield* TokenEncryption.make({ key: { key: keys.b }, previousKeys: [{ key: keys.a }] })
      assert.strictEqual(yield* rotated.decrypt(old, "c"), "old")
      const fresh = yield* rotated.encrypt("new", "c")
      assert.strictEqual(fresh.split(".")[1], rotated.keyId)
      assert.notStrictEqual(rotated.keyId, a.keyId)
    }))

  it.effect("invalid keys fail at construction, naming the field and never showing the key", () =>
    Effect.gen(function*() {
      const short = Redacted.make(Buffer.alloc(31, 7).toString("base64"))
      const cases: Array<[TokenEncryption.Options, string, string]> = [
        [{ key: { key: short } }, "key", "31 bytes"],
        [{ key: { key: Redacted.make("not base64 at all!") } }, "key", "not base64"],
        [{ key: { key: keys.a, id: "has.dot" } }, "key", "id"],
        [{ key: { key: keys.a }, previousKeys: [{ key: keys.b }, { key: short }] }, "previousKeys[1]", "31 bytes"],
        [{ key: { key: keys.a, id: "k" }, previousKeys: [{ key: keys.b, id: "k" }] }, "previousKeys[0]", "already used"]
      ]
      for (const [options, field, reason] of cases) {
        const error = yield* Effect.flip(TokenEncryption.make(options))
        assert.strictEqual(error._tag, "InvalidEncryptionKey")
        assert.strictEqual(error.field, field)
        assert.include(error.message, reason)
        assertNoSecrets(renderings(error), [Redacted.value(keys.a), Redacted.value(keys.b), Redacted.value(short)])
      }
      // the same key configured twice is fine
      yield* TokenEncryption.make({ key: { key: keys.a }, previousKeys: [{ key: keys.a }] })
      assert.strictEqual(Buffer.from(Redacted.value(TokenEncryption.generateKey()), "base64").length, 32)
    }))

  it.effect("layerConfig reads TOKEN_ENCRYPTION_KEY, _KEY_ID and _PREVIOUS_KEYS", () =>
    Effect.gen(function*() {
      const sealedUnderA = yield* Effect.flatMap(
        TokenEncryption.make({ key: { key: keys.a, id: "old" } }),
        (a) => a.encrypt("value", "c")
      )
      const fromEnv = (env: Record<string, string>) =>
        Layer.build(
          TokenEncryption.layerConfig().pipe(
            Layer.provide(
              Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))
            )
          )
        ).pipe(Effect.map(Context.get(TokenEncryption.TokenEncryption)), Effect.scoped)
      const service = yield* fromEnv({
        TOKEN_ENCRYPTION_KEY: Redacted.value(keys.b),
        TOKEN_ENCRYPTION_KEY_ID: "new",
        TOKEN_ENCRYPTION_PREVIOUS_KEYS: `old=${Redacted.value(keys.a)}, ${
          Redacted.value(TokenEncryption.generateKey())
        }`
      })
      assert.strictEqual(service.keyId, "new")
      assert.strictEqual(yield* service.decrypt(sealedUnderA, "c"), "value")
      const missing = yield* Effect.flip(fromEnv({}))
      assert.include(String(missing), "KEY")
      const invalid = yield* Effect.flip(fromEnv({ TOKEN_ENCRYPTION_KEY: "c2hvcnQ=" }))
      assert.include(String(invalid), "5 bytes")
    }))

  it.effect("the store codec: plain JSON when off; sealed when on; every mismatch a typed error", () =>
    Effect.gen(function*() {
      const encryption = yield* TokenEncryption.make({ key: { key: keys.a } })
      const plain = TokenEncryption.codec(AccessToken.AccessToken, undefined)
      const sealed = TokenEncryption.codec(AccessToken.AccessToken, encryption)
      const json = yield* plain.encode(token, "ctx")
      assert.strictEqual(JSON.parse(json).accessToken, "eyJ-a-secret-access-token")
      const roundtrip = yield* plain.decode(json, "ctx")
      assert.strictEqual(Redacted.value(roundtrip.accessToken), "eyJ-a-secret-access-token")
      assert.strictEqual(roundtrip.expiresAt, 301_000)

      const stored = yield* sealed.encode(token, "ctx")
      assert.notInclude(stored, "secret")
      assert.strictEqual(Redacted.value((yield* sealed.decode(stored, "ctx")).accessToken), "eyJ-a-secret-access-token")

      const reason = (effect: Effect.Effect<unknown, TokenEncryption.TokenDecryptionError>) =>
        Effect.map(Effect.flip(effect), (error) => error.reason)
      assert.strictEqual(yield* reason(sealed.decode(json, "ctx")), "unencrypted")
      assert.strictEqual(yield* reason(plain.decode(stored, "ctx")), "unknown-key")
      assert.strictEqual(yield* reason(plain.decode("{\"accessToken\":1}", "ctx")), "malformed")
      assert.strictEqual(yield* reason(plain.decode("{not json", "ctx")), "malformed")
      const wrongShape = yield* encryption.encrypt("{\"foo\":1}", "ctx")
      assert.strictEqual(yield* reason(sealed.decode(wrongShape, "ctx")), "malformed")
    }))
})
