/**
 * The conformance suite every `AccessTokenStore` (where client-credentials tokens live) passes, for your own store in
 * your own vitest: what is set is read back whole, keys never collide, `remove` with `ifToken` removes only that
 * token, concurrent writers and readers of a key never see a torn value, and an expired token is never mistaken
 * for another.
 *
 * @since 0.2.0
 */
import { AccessToken } from "@effect-atm/core/AccessToken"
import { AccessTokenStore } from "@effect-atm/core/AccessTokenStore"
import { assert, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { unique, withTimeout } from "./internal/suite.js"

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** How long each test, and building or releasing the layer, may take. Default: 30 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A key no other test (or run) uses, shaped like the keys the client-credentials manager writes
 * (`<client>\u001e<parameters>`).
 *
 * @since 0.2.0
 * @category helpers
 */
export const uniqueKey = (label: string): string => `${unique(label)}\u001es=api.read\u001fr=`

/**
 * A client-credentials token whose every field carries `tag`, so that a reader can tell which write it came from:
 * the secret is `cc-<tag>`, issued at `now` and valid for `lifetime` milliseconds (default one hour).
 *
 * @since 0.2.0
 * @category helpers
 */
export const makeToken = (
  tag: string,
  now: number,
  options: { readonly lifetime?: number | undefined; readonly tokenType?: "Bearer" | "DPoP" | undefined } = {}
): AccessToken =>
  new AccessToken({
    accessToken: Redacted.make(`cc-${tag}`),
    tokenType: options.tokenType ?? "Bearer",
    issuedAt: now,
    expiresAt: now + (options.lifetime ?? 3_600_000),
    scope: `scope-${tag}`,
    resource: `urn:effect-atm:${tag}`
  })

const secret = (token: AccessToken) => Redacted.value(token.accessToken)
const tagOf = (token: AccessToken) => secret(token).replace(/^cc-/, "")

/** Whether every field of the token comes from the one write its secret names. */
const isWhole = (token: AccessToken) => {
  const tag = tagOf(token)
  return token.scope === `scope-${tag}` && token.resource === `urn:effect-atm:${tag}`
}

/**
 * Registers the suite over the store `layer` builds: a `describe` block named after the store, a test per rule, one
 * store for all of them. Keys are unique per test and run, so the store may hold other data.
 *
 * Tokens are dated on the Effect `Clock`, as the library dates them; here that is a `TestClock`, starting at 0. A
 * store that expires tokens must measure their lifetime on that clock (as `RedisStore` does: it sets a key's expiry
 * to `expiresAt` minus the `Clock`'s now), not compare `expiresAt` with the wall clock.
 *
 * @example
 * ```ts
 * // test/MyAccessTokenStore.test.ts
 * import type { AccessTokenStore } from "@effect-atm/core"
 * import { AccessTokenStoreSuite } from "@effect-atm/testing"
 * import type { Layer } from "effect"
 *
 * declare const MyStoreLive: Layer.Layer<AccessTokenStore.AccessTokenStore> // your store's layer
 *
 * AccessTokenStoreSuite.run("MyAccessTokenStore", MyStoreLive)
 * ```
 *
 * @since 0.2.0
 * @category suites
 */
export const run = <E>(name: string, layer: Layer.Layer<AccessTokenStore, E>, options: Options = {}): void => {
  const timeout = Duration.toMillis(Duration.decode(options.timeout ?? Duration.seconds(30)))
  it.layer(layer, { timeout })(`AccessTokenStore conformance: ${name}`, (layerIt) => {
    const it = { effect: withTimeout(layerIt.effect, timeout) }

    it.effect("what is set is read back with every field, its secret still Redacted; an unknown key is None", () =>
      Effect.gen(function*() {
        const store = yield* AccessTokenStore
        const key = uniqueKey("roundtrip")
        const time = yield* Clock.currentTimeMillis
        assert.isTrue(Option.isNone(yield* store.get(key)), "get returned a token for a key never set")
        const token = makeToken("roundtrip", time, { tokenType: "DPoP" })
        yield* store.set(key, token)
        const read = Option.getOrThrowWith(yield* store.get(key), () => new Error("get returned None after set"))
        assert.instanceOf(read, AccessToken, "the token is not read back as an AccessToken")
        assert.isTrue(Redacted.isRedacted(read.accessToken), "the secret is not read back as a Redacted")
        assert.notInclude(String(read.accessToken), "cc-roundtrip", "the secret shows when printed")
        assert.notInclude(JSON.stringify(read), "cc-roundtrip", "the secret shows in the token's JSON")
        assert.strictEqual(secret(read), "cc-roundtrip", "the secret did not round-trip")
        assert.strictEqual(read.tokenType, "DPoP", "tokenType did not round-trip")
        assert.strictEqual(read.issuedAt, token.issuedAt, "issuedAt did not round-trip")
        assert.strictEqual(read.expiresAt, token.expiresAt, "expiresAt did not round-trip")
        assert.strictEqual(read.scope, token.scope, "scope did not round-trip")
        assert.strictEqual(read.resource, token.resource, "resource did not round-trip")

        // the optional fields stay absent
        const bare = new AccessToken({
          accessToken: Redacted.make("cc-bare"),
          tokenType: "Bearer",
          issuedAt: time,
          expiresAt: time + 3_600_000
        })
        yield* store.set(key, bare)
        const readBare = Option.getOrThrowWith(yield* store.get(key), () => new Error("get returned None after set"))
        assert.strictEqual(secret(readBare), "cc-bare", "a second set did not replace the token")
        assert.isUndefined(readBare.scope, "a scope appeared that was never set")
        assert.isUndefined(readBare.resource, "a resource appeared that was never set")
        assert.isTrue(Option.isNone(yield* store.get(uniqueKey("nobody"))), "an unknown key is not None")
      }))

    it.effect("set replaces; remove removes; removing what is not there is fine", () =>
      Effect.gen(function*() {
        const store = yield* AccessTokenStore
        const key = uniqueKey("replace")
        const time = yield* Clock.currentTimeMillis
        yield* store.set(key, makeToken("first", time))
        yield* store.set(key, makeToken("second", time))
        const read = yield* store.get(key)
        assert.strictEqual(Option.map(read, tagOf).pipe(Option.getOrUndefined), "second", "the last set did not win")
        yield* store.remove(key)
        assert.isTrue(Option.isNone(yield* store.get(key)), "remove(key) left the token")
        yield* store.remove(key)
        yield* store.remove(uniqueKey("nobody"))
        yield* store.remove(uniqueKey("nobody"), makeToken("nobody", time))
        // a removed key can be set again
        yield* store.set(key, makeToken("third", time))
        assert.isTrue(Option.isSome(yield* store.get(key)), "a key could not be set again after remove")
      }))

    it.effect("remove with ifToken removes that token only: one with the same secret, never a newer one", () =>
      Effect.gen(function*() {
        const store = yield* AccessTokenStore
        const key = uniqueKey("if-token")
        const time = yield* Clock.currentTimeMillis
        const rejected = makeToken("rejected", time)
        const newer = makeToken("newer", time)
        // another instance stored a newer token since this one saw `rejected` fail
        yield* store.set(key, newer)
        yield* store.remove(key, rejected)
        assert.strictEqual(
          Option.map(yield* store.get(key), tagOf).pipe(Option.getOrUndefined),
          "newer",
          "remove(key, ifToken) removed a token other than ifToken"
        )
        // the caller holds a copy (as read from the store), not the instance that was set: same secret, same token
        yield* store.set(key, rejected)
        yield* store.remove(key, makeToken("rejected", time + 1))
        assert.isTrue(
          Option.isNone(yield* store.get(key)),
          "remove(key, ifToken) left a token with ifToken's secret (see AccessToken.isSameToken)"
        )
      }))

    it.effect("keys are distinct: keys differing by separators, prefixes or case never share a token", () =>
      Effect.gen(function*() {
        const store = yield* AccessTokenStore
        const base = unique("keys")
        const time = yield* Clock.currentTimeMillis
        const keys = [
          base,
          `${base}\u001e`,
          `${base}\u001ea`,
          `${base}\u001fa`,
          `${base}\u0000a`,
          `${base}:a`,
          `${base}a`,
          `${base} a`,
          `${base}\u001eA`,
          `${base}\u001ea\u001e`,
          `${base}\u001ea\u001fb`,
          `${base}\u001ea:b`,
          `${base}\u001eé`
        ]
        yield* Effect.forEach(keys, (key, i) => store.set(key, makeToken(`k${i}`, time)), { discard: true })
        for (const [i, key] of keys.entries()) {
          const read = yield* store.get(key)
          assert.strictEqual(
            Option.map(read, tagOf).pipe(Option.getOrUndefined),
            `k${i}`,
            `key ${JSON.stringify(key.slice(base.length))} (after a common prefix) read another key's token`
          )
        }
        // removing one removes no other
        yield* store.remove(keys[2]!)
        for (const [i, key] of keys.entries()) {
          assert.strictEqual(
            Option.isSome(yield* store.get(key)),
            i !== 2,
            `removing ${JSON.stringify(keys[2]!.slice(base.length))} removed ${JSON.stringify(key.slice(base.length))}`
          )
        }
      }))

    it.effect("an expired token is returned as it was set or not at all, never as the token it replaced", () =>
      Effect.gen(function*() {
        const store = yield* AccessTokenStore
        const key = uniqueKey("expired")
        yield* TestClock.adjust("10 minutes")
        const time = yield* Clock.currentTimeMillis
        // the manager reads a stored token and renews it when it has expired: the store may drop expired tokens,
        // but what it returns must be what was set last, with its `expiresAt`, so that the manager sees the expiry
        yield* store.set(key, makeToken("valid", time))
        const expired = makeToken("expired", time - 120_000, { lifetime: 60_000 })
        yield* store.set(key, expired)
        const read = yield* store.get(key)
        if (Option.isSome(read)) {
          assert.strictEqual(tagOf(read.value), "expired", "set of an expired token kept the token it replaced")
          assert.strictEqual(read.value.expiresAt, expired.expiresAt, "an expired token came back with another expiry")
        }

        // a token that expires while stored
        const short = makeToken("short", time, { lifetime: 1_000 })
        yield* store.set(key, short)
        yield* TestClock.adjust("2 seconds")
        const later = yield* store.get(key)
        if (Option.isSome(later)) {
          assert.strictEqual(tagOf(later.value), "short", "a token that expired while stored came back as another")
          assert.strictEqual(later.value.expiresAt, short.expiresAt, "a token came back with another expiry")
        }
      }))

    it.effect("concurrent sets of one key end with one of the written tokens, whole; readers never see a torn one", () =>
      Effect.gen(function*() {
        const store = yield* AccessTokenStore
        const key = uniqueKey("concurrent")
        const time = yield* Clock.currentTimeMillis
        const writers = 50
        yield* store.set(key, makeToken("w-initial", time))
        let reads = 0
        let torn = 0
        let missing = 0
        const written = new Set(["w-initial", ...Array.from({ length: writers }, (_, i) => `w${i}`)])
        const reader = Effect.forEach(Array.from({ length: writers }), () =>
          Effect.map(store.get(key), (read) => {
            reads++
            if (Option.isNone(read)) missing++
            else if (!isWhole(read.value) || !written.has(tagOf(read.value))) torn++
          }), { discard: true })
        yield* Effect.all([
          Effect.forEach(
            Array.from({ length: writers }, (_, i) => i),
            (i) => store.set(key, makeToken(`w${i}`, time + i)),
            { concurrency: "unbounded", discard: true }
          ),
          reader,
          reader
        ], { concurrency: "unbounded", discard: true })
        assert.strictEqual(reads, 2 * writers, "some reads did not complete")
        assert.strictEqual(torn, 0, `${torn} of ${reads} reads returned a token mixed from two writes`)
        assert.strictEqual(missing, 0, `${missing} of ${reads} reads found no token while it was being replaced`)
        const final = Option.getOrThrowWith(
          yield* store.get(key),
          () => new Error("no token after concurrent sets")
        )
        assert.isTrue(isWhole(final), "the token left by concurrent sets mixes two writes")
        assert.isTrue(written.has(tagOf(final)) && tagOf(final) !== "w-initial", "concurrent sets were all lost")
        assert.strictEqual(final.issuedAt, time + Number(tagOf(final).slice(1)), "issuedAt is from another write")
      }))
  })
}
