/**
 * The conformance suite every `UserTokenStore` passes, for your own store in your own vitest: what is stored is read
 * back intact, users and parameters are isolated, a user's refresh token is shared by their access tokens and
 * replaced with them in one write, concurrent writers never mix two writes, and `clear` removes what it should.
 *
 * @since 0.2.0
 */
import { AccessToken, type TokenRequestOptions } from "@effect-atm/core/AccessToken"
import { UserToken } from "@effect-atm/core/UserToken"
import { UserTokenStore } from "@effect-atm/core/UserTokenStore"
import { assert, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { withTimeout } from "./internal/suite.js"

/**
 * What the suite may assume of the store beyond the `UserTokenStore` contract.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /**
   * The store drops a user's entry this long after its last write, measured on the Effect `Clock` (tested with
   * `TestClock`). Leave it out for stores whose expiry runs on another clock (Redis): test those on their own.
   */
  readonly clockExpiry?: Duration.DurationInput | undefined
  /** The store holds at most this many users, dropping the least recently written first. */
  readonly capacity?: number | undefined
  /** How long each test, and building or releasing the layer, may take. Default: 30 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

let serial = 0

/**
 * A user key no other test (or run) uses, with the separator `CurrentUser.storeKey` puts in keys: for tests of your
 * own beside the suite, over a store that other tests or runs share.
 *
 * @since 0.2.0
 * @category helpers
 */
export const uniqueUser = (label: string): string =>
  `${label}-${process.pid}-${Date.now().toString(36)}-${++serial}\u001esession-${Math.random().toString(36).slice(2)}`

const demo: TokenRequestOptions = { resource: "urn:effect-atm:demo-api" }
const other: TokenRequestOptions = { resource: "urn:effect-atm:other-api", scope: "other.read" }

/**
 * A user token whose secrets all carry `tag` (`at-<tag>`, `rt-<tag>`, `id-<tag>`), so that a reader can tell which
 * write each part came from. Its access token was issued at `now` (default 1,000) and lives 5 minutes.
 *
 * @since 0.2.0
 * @category helpers
 */
export const makeToken = (
  tag: string,
  options: {
    readonly resource?: string | undefined
    readonly accessToken?: boolean | undefined
    readonly now?: number | undefined
  } = {}
): UserToken => {
  const now = options.now ?? 1_000
  return new UserToken({
    clientId: "web",
    refreshToken: Redacted.make(`rt-${tag}`),
    idToken: Redacted.make(`id-${tag}`),
    ...(options.accessToken === false ? {} : {
      accessToken: new AccessToken({
        accessToken: Redacted.make(`at-${tag}`),
        tokenType: "Bearer",
        issuedAt: now,
        expiresAt: now + 300_000,
        scope: "api.read",
        ...(options.resource === undefined ? {} : { resource: options.resource })
      })
    })
  })
}

const secret = (value: Redacted.Redacted<string> | undefined) => value === undefined ? undefined : Redacted.value(value)
const tagOf = (value: Redacted.Redacted<string> | undefined) => secret(value)?.replace(/^(at|rt|id)-/, "")

const getSome = (user: string, params?: TokenRequestOptions) =>
  Effect.flatMap(UserTokenStore, (store) => store.get(user, params)).pipe(
    Effect.map((token) => Option.getOrThrowWith(token, () => new Error(`get returned None for a stored user: ${user}`)))
  )

/**
 * Registers the suite over the store `layer` builds: a `describe` block named after the store, a test per rule, one
 * store for all of them. Users are unique per test and run, so the store may hold other data.
 *
 * @example
 * ```ts
 * // test/MyStore.test.ts
 * import type { UserTokenStore } from "@effect-atm/core"
 * import { UserTokenStoreSuite } from "@effect-atm/testing"
 * import type { Layer } from "effect"
 *
 * declare const MyStoreLive: Layer.Layer<UserTokenStore.UserTokenStore> // your store, e.g. MyStore.layer(options)
 *
 * UserTokenStoreSuite.run("MyStore", MyStoreLive, { clockExpiry: "14 days" })
 * ```
 *
 * @since 0.2.0
 * @category suites
 */
export const run = <E>(
  name: string,
  layer: Layer.Layer<UserTokenStore, E>,
  options: Options = {}
): void => {
  const timeout = Duration.toMillis(Duration.decode(options.timeout ?? Duration.seconds(30)))
  it.layer(layer, { timeout })(`UserTokenStore conformance: ${name}`, (layerIt) => {
    const it = { effect: withTimeout(layerIt.effect, timeout) }
    it.effect("what is stored is read back, every field intact; an unknown user is None", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("roundtrip")
        assert.isTrue(Option.isNone(yield* store.get(user, demo)), "a user never stored is not None")
        const token = makeToken("one", { resource: demo.resource })
        yield* store.store(user, token, demo)
        const read = yield* getSome(user, demo)
        assert.strictEqual(read.clientId, "web", "clientId did not round-trip")
        assert.strictEqual(secret(read.refreshToken), "rt-one", "the refresh token did not round-trip")
        assert.strictEqual(secret(read.idToken), "id-one", "the ID token did not round-trip")
        const access = read.accessToken!
        assert.instanceOf(access, AccessToken, "the access token is not read back as an AccessToken")
        assert.strictEqual(secret(access.accessToken), "at-one", "the access token's secret did not round-trip")
        assert.strictEqual(access.tokenType, "Bearer", "tokenType did not round-trip")
        assert.strictEqual(access.issuedAt, token.accessToken!.issuedAt, "issuedAt did not round-trip")
        assert.strictEqual(access.expiresAt, token.accessToken!.expiresAt, "expiresAt did not round-trip")
        assert.strictEqual(access.scope, "api.read", "scope did not round-trip")
        assert.strictEqual(access.resource, demo.resource, "resource did not round-trip")
        assert.isTrue(Option.isNone(yield* store.get(uniqueUser("nobody"), demo)), "an unknown user is not None")
      }))

    it.effect("a DPoP session keeps its proof key with its refresh token, and each bound token its own", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("dpop")
        // a key is a private JWK as JSON: stored as it is given, encrypted with the refresh token when encryption is on
        const sessionKey = Redacted.make(`{"kty":"EC","crv":"P-256","alg":"ES256","d":"key-of-${user}"}`)
        const bound = (tag: string, resource: string | undefined) => {
          const token = makeToken(tag, { resource })
          return new UserToken({
            ...token,
            dpopKey: sessionKey,
            accessToken: new AccessToken({ ...token.accessToken!, tokenType: "DPoP", dpopKey: sessionKey })
          })
        }
        yield* store.store(user, bound("d1", demo.resource), demo)
        const read = yield* getSome(user, demo)
        assert.strictEqual(
          secret(read.dpopKey),
          Redacted.value(sessionKey),
          "the session's DPoP key did not round-trip"
        )
        assert.strictEqual(read.accessToken?.tokenType, "DPoP", "tokenType DPoP did not round-trip")
        assert.strictEqual(
          secret(read.accessToken?.dpopKey),
          Redacted.value(sessionKey),
          "the access token's DPoP key did not round-trip"
        )
        // like the refresh token, the key is shared by the user's parameters
        assert.strictEqual(
          secret((yield* getSome(user, other)).dpopKey),
          Redacted.value(sessionKey),
          "the session's DPoP key is missing for other parameters"
        )
        yield* store.store(user, bound("d2", other.resource), other)
        assert.strictEqual(
          secret((yield* getSome(user, demo)).dpopKey),
          Redacted.value(sessionKey),
          "a write for other parameters lost the session's DPoP key"
        )
        // a session without DPoP has no key
        const plain = uniqueUser("nodpop")
        yield* store.store(plain, makeToken("p"), demo)
        assert.isUndefined((yield* getSome(plain, demo)).dpopKey, "a DPoP key appeared that was never stored")
      }))

    it.effect("a known user without an access token for some parameters is Some without one", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("partial")
        yield* store.store(user, makeToken("p"), demo)
        const read = yield* getSome(user, other)
        assert.isUndefined(read.accessToken, "returned the access token of other parameters")
        assert.strictEqual(
          secret(read.refreshToken),
          "rt-p",
          "the user's refresh token is missing where they have no access token"
        )
        // no parameters at all is a key of its own
        assert.isUndefined(
          (yield* getSome(user)).accessToken,
          "no parameters returned the access token of some parameters"
        )
      }))

    it.effect("tokens without refresh or ID token are stored as they are", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("bare")
        const full = makeToken("bare")
        yield* store.store(user, new UserToken({ clientId: "web", accessToken: full.accessToken! }), demo)
        const read = yield* getSome(user, demo)
        assert.isUndefined(read.refreshToken, "a refresh token appeared that was never stored")
        assert.isUndefined(read.idToken, "an ID token appeared that was never stored")
        assert.strictEqual(
          secret(read.accessToken?.accessToken),
          "at-bare",
          "the access token stored without refresh token was lost"
        )
      }))

    it.effect("per-resource tokens share one refresh token: a rotation stored with A is seen with B", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("shared")
        yield* store.store(user, makeToken("1", { resource: demo.resource }), demo)
        yield* store.store(user, makeToken("2", { resource: other.resource }), other)
        // refreshing A rotates the refresh token: B keeps its access token but gets the new refresh token
        yield* store.store(user, makeToken("3", { resource: demo.resource }), demo)
        const a = yield* getSome(user, demo)
        const b = yield* getSome(user, other)
        assert.strictEqual(secret(a.accessToken?.accessToken), "at-3", "A's new access token was not stored")
        assert.strictEqual(secret(b.accessToken?.accessToken), "at-2", "storing for A replaced B's access token")
        assert.strictEqual(secret(a.refreshToken), "rt-3", "A's rotated refresh token was not stored")
        assert.strictEqual(
          secret(b.refreshToken),
          "rt-3",
          "B still sees the old refresh token after a rotation stored with A"
        )
        assert.strictEqual(secret(b.idToken), "id-3", "B still sees the old ID token after a rotation stored with A")
      }))

    it.effect("storing without an access token replaces the shared tokens and keeps the access tokens", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("keep")
        yield* store.store(user, makeToken("1"), demo)
        yield* store.store(user, makeToken("2", { accessToken: false }), demo)
        const read = yield* getSome(user, demo)
        assert.strictEqual(
          secret(read.accessToken?.accessToken),
          "at-1",
          "storing without an access token dropped the access token"
        )
        assert.strictEqual(
          secret(read.refreshToken),
          "rt-2",
          "storing without an access token did not replace the refresh token"
        )
      }))

    it.effect("parameters select tokens whatever the order of extra parameters", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("params")
        yield* store.store(user, makeToken("x"), { ...demo, parameters: { a: "1", b: "2" } })
        const read = yield* getSome(user, { ...demo, parameters: { b: "2", a: "1" } })
        assert.strictEqual(
          secret(read.accessToken?.accessToken),
          "at-x",
          "the order of extra parameters changed the key"
        )
        assert.isUndefined(
          (yield* getSome(user, { ...demo, parameters: { a: "1" } })).accessToken,
          "fewer extra parameters matched the token of more"
        )
        assert.isUndefined(
          (yield* getSome(user, { ...demo, scope: "api.write" })).accessToken,
          "another scope matched the token"
        )
      }))

    it.effect("users are isolated: one user's tokens are never returned for another", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const alice = uniqueUser("alice")
        const bob = uniqueUser("bob")
        // a user key that is a prefix of another one must not match it
        const alicePrefix = alice.slice(0, alice.indexOf("\u001e"))
        yield* store.store(alice, makeToken("alice"), demo)
        yield* store.store(bob, makeToken("bob"), demo)
        assert.strictEqual(
          tagOf((yield* getSome(alice, demo)).accessToken?.accessToken),
          "alice",
          "alice got another user's token"
        )
        assert.strictEqual(
          tagOf((yield* getSome(bob, demo)).accessToken?.accessToken),
          "bob",
          "bob got another user's token"
        )
        assert.isTrue(Option.isNone(yield* store.get(alicePrefix, demo)), "a prefix of a user key matched that user")
        yield* store.clear(bob)
        assert.strictEqual(
          tagOf((yield* getSome(alice, demo)).refreshToken),
          "alice",
          "clearing bob removed alice's tokens"
        )
      }))

    it.effect("atomic update: a reader never sees an access token with a refresh token of another write", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("atomic")
        yield* store.store(user, makeToken("w0"), demo)
        const writes = 200
        let reads = 0
        let mixed = 0
        const writer = Effect.forEach(
          Array.from({ length: writes }, (_, i) => i + 1),
          (i) => store.store(user, makeToken(`w${i}`), demo),
          { discard: true }
        )
        const reader = Effect.forEach(
          Array.from({ length: writes }),
          () =>
            Effect.map(store.get(user, demo), (token) => {
              const read = Option.getOrThrow(token)
              reads++
              const tags = new Set([
                tagOf(read.accessToken?.accessToken),
                tagOf(read.refreshToken),
                tagOf(read.idToken)
              ])
              if (tags.size !== 1) mixed++
            }),
          { discard: true }
        )
        yield* Effect.all([writer, reader, reader], { concurrency: "unbounded", discard: true })
        assert.strictEqual(reads, 2 * writes, "some reads did not complete")
        assert.strictEqual(mixed, 0, `${mixed} of ${reads} reads mixed two writes`)
        assert.strictEqual(tagOf((yield* getSome(user, demo)).refreshToken), `w${writes}`, "the last write did not win")
      }))

    it.effect("concurrent writers of one user: one write wins as a whole, never a mix", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("writers")
        const writers = 50
        yield* Effect.forEach(
          Array.from({ length: writers }, (_, i) => i),
          (i) => store.store(user, makeToken(`c${i}`, { resource: i % 2 === 0 ? demo.resource : undefined }), demo),
          { concurrency: "unbounded", discard: true }
        )
        const read = yield* getSome(user, demo)
        const winner = tagOf(read.accessToken?.accessToken)
        assert.isDefined(winner, "no access token after concurrent writes")
        assert.strictEqual(
          tagOf(read.refreshToken),
          winner,
          "the refresh token is from another write than the access token"
        )
        assert.strictEqual(tagOf(read.idToken), winner, "the ID token is from another write than the access token")
        // sequential writes: the last one wins
        yield* store.store(user, makeToken("late-1"), demo)
        yield* store.store(user, makeToken("late-2"), demo)
        assert.strictEqual(
          tagOf((yield* getSome(user, demo)).refreshToken),
          "late-2",
          "the last of two sequential writes did not win"
        )
      }))

    it.effect("concurrent refreshes of different resources: every access token kept, one refresh token", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("resources")
        const resources = Array.from({ length: 20 }, (_, i) => ({ resource: `urn:test:api-${i}` }))
        yield* Effect.forEach(resources, (params, i) => store.store(user, makeToken(`r${i}`), params), {
          concurrency: "unbounded",
          discard: true
        })
        const reads = yield* Effect.forEach(resources, (params) => getSome(user, params))
        const refreshTokens = new Set(reads.map((read) => secret(read.refreshToken)))
        assert.strictEqual(
          refreshTokens.size,
          1,
          "concurrent writes for different resources left different refresh tokens"
        )
        reads.forEach((read, i) =>
          assert.strictEqual(
            secret(read.accessToken?.accessToken),
            `at-r${i}`,
            `the access token for resource ${i} was lost`
          )
        )
      }))

    it.effect("clear with parameters removes that access token only", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("clear-params")
        yield* store.store(user, makeToken("a"), demo)
        yield* store.store(user, makeToken("b"), other)
        yield* store.clear(user, demo)
        const a = yield* getSome(user, demo)
        assert.isUndefined(a.accessToken, "clear(user, params) left that access token")
        assert.strictEqual(secret(a.refreshToken), "rt-b", "clear(user, params) removed the user's refresh token")
        assert.strictEqual(
          secret((yield* getSome(user, other)).accessToken?.accessToken),
          "at-b",
          "clear(user, params) removed the access token of other parameters"
        )
        // clearing what is not there is fine
        yield* store.clear(user, demo)
        yield* store.clear(uniqueUser("nobody"), demo)
      }))

    it.effect("clear without parameters removes everything held for the user", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("clear-all")
        yield* store.store(user, makeToken("a"), demo)
        yield* store.store(user, makeToken("b"), other)
        yield* store.clear(user)
        assert.isTrue(Option.isNone(yield* store.get(user, demo)), "clear(user) left the user's entry")
        assert.isTrue(
          Option.isNone(yield* store.get(user, other)),
          "clear(user) left an access token for other parameters"
        )
        // the user can sign in again afterwards, without the old access tokens
        yield* store.store(user, makeToken("c"), demo)
        assert.isUndefined(
          (yield* getSome(user, other)).accessToken,
          "an access token from before clear(user) came back"
        )
        yield* store.clear(uniqueUser("nobody"))
      }))

    const clockExpiry = options.clockExpiry
    if (clockExpiry !== undefined) {
      it.effect("an entry expires its time to live after its last write (TestClock)", () =>
        Effect.gen(function*() {
          const store = yield* UserTokenStore
          const timeToLive = Duration.decode(clockExpiry)
          const user = uniqueUser("expiry")
          yield* store.store(user, makeToken("e1"), demo)
          yield* store.store(user, makeToken("e2"), other)
          yield* TestClock.adjust(Duration.subtract(timeToLive, Duration.millis(10)))
          // a write renews the entry
          yield* store.store(user, makeToken("e3", { accessToken: false }), demo)
          yield* TestClock.adjust(Duration.millis(20))
          assert.strictEqual(
            secret((yield* getSome(user, other)).accessToken?.accessToken),
            "at-e2",
            "an entry expired before its time to live after the last write"
          )
          yield* TestClock.adjust(timeToLive)
          assert.isTrue(Option.isNone(yield* store.get(user, demo)), "an entry outlived its time to live")
          // a sign-in after expiry starts afresh: access tokens of the dead grant are gone
          yield* store.store(user, makeToken("e4", { accessToken: false }), demo)
          assert.isUndefined(
            (yield* getSome(user, other)).accessToken,
            "an access token of the expired entry came back"
          )
          assert.strictEqual(
            secret((yield* getSome(user, demo)).refreshToken),
            "rt-e4",
            "the new sign-in's refresh token was not stored"
          )
        }))
    }

    const capacity = options.capacity
    if (capacity !== undefined) {
      it.effect(`at most ${capacity} users: the least recently written is dropped first`, () =>
        Effect.gen(function*() {
          const store = yield* UserTokenStore
          const users = Array.from({ length: capacity + 1 }, (_, i) => uniqueUser(`capacity-${i}`))
          yield* Effect.forEach(users.slice(0, capacity), (user) => store.store(user, makeToken(user), demo), {
            discard: true
          })
          // writing the first one again makes the second the least recently written
          yield* store.store(users[0]!, makeToken("again"), demo)
          yield* store.store(users[capacity]!, makeToken("last"), demo)
          assert.isTrue(Option.isSome(yield* store.get(users[0]!, demo)), "the user written again was dropped")
          assert.isTrue(
            Option.isNone(yield* store.get(users[1]!, demo)),
            "the least recently written user was not dropped at capacity"
          )
          assert.isTrue(Option.isSome(yield* store.get(users[capacity]!, demo)), "the newest user was dropped")
        }))
    }
  })
}
