/**
 * Encryption at rest for the tokens a store writes: AES-256-GCM (node:crypto) under a 32-byte key from
 * configuration. Each sealed value names the key it was sealed with, so keys can be rotated: new writes use the
 * current key, values written under a previous key stay readable as long as that key is configured. A value that
 * cannot be opened (unknown key, wrong key, tampered, moved to another user) is a `TokenDecryptionError`, never
 * garbage.
 *
 * The durable stores (`@effect-atm/store-sql`, `@effect-atm/store-redis`) require a `TokenEncryption`, so that
 * storing tokens in the clear is a decision written in the code: `layer` / `layerConfig` to encrypt,
 * `layerPlaintext` not to.
 *
 * @example
 * ```ts
 * import { TokenEncryption } from "@effect-atm/core"
 * import { Layer } from "effect"
 * import { RedisStore } from "@effect-atm/store-redis"
 *
 * // TOKEN_ENCRYPTION_KEY=<32 bytes, base64> (e.g. `openssl rand -base64 32`)
 * // TOKEN_ENCRYPTION_PREVIOUS_KEYS=<old key>,<older key>   (optional, for rotation)
 * const StoreLive = RedisStore.layer({ url: "redis://127.0.0.1:6379" }).pipe(
 *   Layer.provide(TokenEncryption.layerConfig())
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as internal from "./internal/tokenEncryption.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class TokenEncryption extends Context.Tag("@effect-atm/core/TokenEncryption")<TokenEncryption, {
  /** The id of the key new values are sealed with. */
  readonly keyId: string
  /**
   * Seals `plaintext`, bound to `context` (e.g. the user and parameters it is stored under): a sealed value
   * opens only with the same context, so it cannot be moved to another user's entry.
   */
  readonly encrypt: (plaintext: string, context: string) => Effect.Effect<string>
  /** Opens a value sealed by `encrypt` under any configured key. */
  readonly decrypt: (sealed: string, context: string) => Effect.Effect<string, TokenDecryptionError>
}>() {}

/**
 * A key: 32 random bytes, base64. Without `id`, the id is derived from the key (a one-way function of it), so a
 * key keeps its id wherever it is configured.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyInput {
  readonly id?: string | undefined
  readonly key: Redacted.Redacted<string>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The current key: new values are sealed with it. */
  readonly key: KeyInput
  /** Keys of earlier generations: values sealed with them stay readable (rotation). */
  readonly previousKeys?: ReadonlyArray<KeyInput> | undefined
}

/**
 * Marks the errors of this module (see `isTokenEncryptionError`).
 *
 * @since 0.2.0
 * @category type ids
 */
export const ErrorTypeId: unique symbol = Symbol.for("@effect-atm/core/TokenEncryption/Error")

/**
 * @since 0.2.0
 * @category type ids
 */
export type ErrorTypeId = typeof ErrorTypeId

/**
 * Whether `u` is an `InvalidEncryptionKey` or a `TokenDecryptionError`.
 *
 * @since 0.2.0
 * @category guards
 */
export const isTokenEncryptionError = (u: unknown): u is InvalidEncryptionKey | TokenDecryptionError =>
  Predicate.hasProperty(u, ErrorTypeId)

/**
 * A configured key is unusable (not base64, not 32 bytes, a malformed or duplicate id). Raised when the layer is
 * built.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidEncryptionKey extends Schema.TaggedError<InvalidEncryptionKey>()("InvalidEncryptionKey", {
  /** Which key: `key`, or `previousKeys[i]`. */
  field: Schema.String,
  reason: Schema.String
}) {
  /**
   * @since 0.2.0
   */
  readonly [ErrorTypeId]: ErrorTypeId = ErrorTypeId

  override get message(): string {
    return `The token encryption key at "${this.field}" is invalid: ${this.reason}. ` +
      `A key is 32 random bytes in base64 (e.g. from \`openssl rand -base64 32\`).`
  }
}

/**
 * Why a stored value could not be opened.
 *
 * - `unknown-key`: sealed under a key id that is not configured (a rotated-out key, or encryption is off);
 * - `authentication-failed`: the key or the context does not match, or the value was altered;
 * - `unencrypted`: a plain value where encryption is on (written before encryption was enabled, or injected);
 * - `malformed`: neither a sealed value nor a readable plain one.
 *
 * @since 0.1.0
 * @category models
 */
export const DecryptionFailure = Schema.Literal("unknown-key", "authentication-failed", "unencrypted", "malformed")

/**
 * @since 0.1.0
 * @category models
 */
export type DecryptionFailure = typeof DecryptionFailure.Type

/**
 * A stored value could not be read back. The value was not used.
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenDecryptionError extends Schema.TaggedError<TokenDecryptionError>()("TokenDecryptionError", {
  reason: DecryptionFailure,
  keyId: Schema.optional(Schema.String)
}) {
  /**
   * @since 0.2.0
   */
  readonly [ErrorTypeId]: ErrorTypeId = ErrorTypeId

  override get message(): string {
    const key = this.keyId === undefined ? "" : ` (key id "${this.keyId}")`
    switch (this.reason) {
      case "unknown-key":
        return `A stored token is sealed under a key that is not configured${key}: add that key to the previous ` +
          `keys (or configure encryption), or clear the entry.`
      case "authentication-failed":
        return `A stored token failed authentication${key}: the key material is wrong, or the value was altered ` +
          `or moved to another entry. It was not used.`
      case "unencrypted":
        return "A stored token is not encrypted although encryption is on: it was written before encryption was " +
          "enabled, or by someone else. It was not used; clear the store (users sign in again)."
      case "malformed":
        return "A stored token could not be decoded: the entry is corrupt. It was not used."
    }
  }
}

/**
 * Builds the service, checking every key.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<TokenEncryption["Type"], InvalidEncryptionKey> = internal.make

/**
 * The service from keys given in code (from a secret manager, or generated in tests).
 *
 * @example
 * ```ts
 * import { TokenEncryption } from "@effect-atm/core"
 * import { Redacted } from "effect"
 *
 * // rotation: seal with "2026-06", still open what "2025-12" sealed
 * const EncryptionLive = TokenEncryption.layer({
 *   key: { id: "2026-06", key: Redacted.make("<32 bytes, base64>") },
 *   previousKeys: [{ id: "2025-12", key: Redacted.make("<32 bytes, base64>") }]
 * })
 *
 * // tests: a fresh key per run
 * const TestEncryption = TokenEncryption.layer({ key: { key: TokenEncryption.generateKey() } })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<TokenEncryption, InvalidEncryptionKey> =>
  Layer.effect(TokenEncryption, make(options))

/**
 * No encryption: stores in its context write tokens as plain JSON. For development, or where the store itself is
 * encrypted and access-controlled; a sealed value read back through it is a `TokenDecryptionError`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const plaintext: TokenEncryption["Type"] = internal.plaintext

/**
 * `plaintext` as a layer: the explicit choice not to encrypt tokens at rest.
 *
 * @example
 * ```ts
 * import { TokenEncryption } from "@effect-atm/core"
 * import { RedisStore } from "@effect-atm/store-redis"
 * import { Layer } from "effect"
 *
 * const StoreLive = RedisStore.layer({ url: "redis://127.0.0.1:6379" }).pipe(Layer.provide(TokenEncryption.layerPlaintext))
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerPlaintext: Layer.Layer<TokenEncryption> = Layer.succeed(TokenEncryption, plaintext)

/**
 * Parses a list of keys as configured: comma-separated, each `base64` or `id=base64`.
 *
 * @since 0.1.0
 * @category config
 */
export const parseKeyList = (value: Redacted.Redacted<string>): Array<KeyInput> =>
  Redacted.value(value).split(",").map((item) => item.trim()).filter((item) => item.length > 0).map((item) => {
    const equals = item.indexOf("=")
    // base64 padding is `=` at the end: an id is only what comes before an `=` followed by more text
    if (equals > 0 && equals < item.length - 1 && !/^=+$/.test(item.slice(equals))) {
      return { id: item.slice(0, equals), key: Redacted.make(item.slice(equals + 1)) }
    }
    return { key: Redacted.make(item) }
  })

/**
 * Reads the options from Effect `Config`: `KEY` (the current key, base64), `KEY_ID` (optional) and
 * `PREVIOUS_KEYS` (optional, comma-separated `base64` or `id=base64`), nested under `TOKEN_ENCRYPTION` by
 * `layerConfig` (environment: `TOKEN_ENCRYPTION_KEY`, ...).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  key: Config.redacted("KEY").pipe(Config.withDescription("Current token encryption key: 32 bytes, base64")),
  keyId: Config.option(Config.string("KEY_ID")).pipe(
    Config.withDescription("Id of the current key (default: derived from the key)")
  ),
  previousKeys: Config.option(Config.redacted("PREVIOUS_KEYS")).pipe(
    Config.withDescription("Earlier keys still accepted for reading: comma-separated base64 or id=base64")
  )
}).pipe(Config.map(({ key, keyId, previousKeys }): Options => ({
  key: { key, id: keyId._tag === "Some" ? keyId.value : undefined },
  previousKeys: previousKeys._tag === "Some" ? parseKeyList(previousKeys.value) : []
})))

/**
 * The service from Effect `Config` (by default `config` nested under `TOKEN_ENCRYPTION`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: Config.Config<Options>
): Layer.Layer<TokenEncryption, InvalidEncryptionKey | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(options ?? Config.nested(config, "TOKEN_ENCRYPTION"), layer))

/**
 * A new random key (32 bytes, base64), e.g. for tests or to print for configuration.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generateKey: () => Redacted.Redacted<string> = internal.generateKey

/**
 * Whether a stored string is a sealed value (rather than plain JSON).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isSealed: (value: string) => boolean = internal.isSealed

/**
 * How a store turns a value into the string it writes and back: JSON of the schema's encoded form, sealed when a
 * `TokenEncryption` is given. Decoding checks both the seal and the schema: what comes back is a valid value or
 * a `TokenDecryptionError`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Codec<A> {
  readonly encrypted: boolean
  readonly encode: (value: A, context: string) => Effect.Effect<string>
  readonly decode: (stored: string, context: string) => Effect.Effect<A, TokenDecryptionError>
}

/**
 * A codec for stored values of `schema` (e.g. `AccessToken`), encrypting with `encryption` unless it is absent or
 * `plaintext`.
 *
 * @example
 * ```ts
 * import { AccessToken, TokenEncryption } from "@effect-atm/core"
 * import { Effect } from "effect"
 *
 * // in a store of your own: each value is sealed bound to where it is stored
 * const roundTrip = (user: string, token: AccessToken.AccessToken) =>
 *   Effect.gen(function*() {
 *     const codec = TokenEncryption.codec(AccessToken.AccessToken, yield* TokenEncryption.TokenEncryption)
 *     const stored = yield* codec.encode(token, `access;${user}`) // the string to write
 *     return yield* codec.decode(stored, `access;${user}`) // under another context: TokenDecryptionError
 *   })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const codec: <A, I>(
  schema: Schema.Schema<A, I>,
  encryption: TokenEncryption["Type"] | undefined
) => Codec<A> = internal.codec
