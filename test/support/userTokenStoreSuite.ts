/**
 * The conformance suite every `UserTokenStore` passes: run it over your own store with
 * `userTokenStoreSuite("my store", MyStore.layer)`.
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

export interface SuiteOptions {
  /**
   * The store drops a user's entry this long after its last write, measured on the Effect `Clock` (tested with
   * `TestClock`). Leave it out for stores whose expiry runs on another clock (Redis): test those on their own.
   */
  readonly clockExpiry?: Duration.DurationInput | undefined
  /** The store holds at most this many users, dropping the least recently written first. */
  readonly capacity?: number | undefined
}

let serial = 0

/** A user key no other test (or run) uses; with the characters `CurrentUser.storeKey` puts in keys. */
export const uniqueUser = (label: string) =>
  `${label}-${process.pid}-${Date.now().toString(36)}-${++serial}\u001esession-${Math.random().toString(36).slice(2)}`

const demo: TokenRequestOptions = { resource: "urn:effect-atm:demo-api" }
const other: TokenRequestOptions = { resource: "urn:effect-atm:other-api", scope: "other.read" }

/** A token whose secrets all carry `tag`, so a reader can tell which write each part came from. */
export const makeToken = (
  tag: string,
  options: {
    readonly resource?: string | undefined
    readonly accessToken?: boolean | undefined
    readonly now?: number | undefined
  } = {}
) => {
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
    Effect.map((token) => Option.getOrThrowWith(token, () => new Error("expected a stored token")))
  )

export const userTokenStoreSuite = <E>(
  name: string,
  layer: Layer.Layer<UserTokenStore, E>,
  options: SuiteOptions = {}
) =>
  it.layer(layer, { timeout: "30 seconds" })(`UserTokenStore conformance: ${name}`, (it) => {
    it.effect("what is stored is read back, every field intact; an unknown user is None", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("roundtrip")
        assert.isTrue(Option.isNone(yield* store.get(user, demo)))
        const token = makeToken("one", { resource: demo.resource })
        yield* store.store(user, token, demo)
        const read = yield* getSome(user, demo)
        assert.strictEqual(read.clientId, "web")
        assert.strictEqual(secret(read.refreshToken), "rt-one")
        assert.strictEqual(secret(read.idToken), "id-one")
        const access = read.accessToken!
        assert.instanceOf(access, AccessToken)
        assert.strictEqual(secret(access.accessToken), "at-one")
        assert.strictEqual(access.tokenType, "Bearer")
        assert.strictEqual(access.issuedAt, token.accessToken!.issuedAt)
        assert.strictEqual(access.expiresAt, token.accessToken!.expiresAt)
        assert.strictEqual(access.scope, "api.read")
        assert.strictEqual(access.resource, demo.resource)
        assert.isTrue(Option.isNone(yield* store.get(uniqueUser("nobody"), demo)))
      }))

    it.effect("a known user without an access token for some parameters is Some without one", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("partial")
        yield* store.store(user, makeToken("p"), demo)
        const read = yield* getSome(user, other)
        assert.isUndefined(read.accessToken)
        assert.strictEqual(secret(read.refreshToken), "rt-p")
        // no parameters at all is a key of its own
        assert.isUndefined((yield* getSome(user)).accessToken)
      }))

    it.effect("tokens without refresh or ID token are stored as they are", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("bare")
        const full = makeToken("bare")
        yield* store.store(user, new UserToken({ clientId: "web", accessToken: full.accessToken! }), demo)
        const read = yield* getSome(user, demo)
        assert.isUndefined(read.refreshToken)
        assert.isUndefined(read.idToken)
        assert.strictEqual(secret(read.accessToken?.accessToken), "at-bare")
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
        assert.strictEqual(secret(a.accessToken?.accessToken), "at-3")
        assert.strictEqual(secret(b.accessToken?.accessToken), "at-2")
        assert.strictEqual(secret(a.refreshToken), "rt-3")
        assert.strictEqual(secret(b.refreshToken), "rt-3")
        assert.strictEqual(secret(b.idToken), "id-3")
      }))

    it.effect("storing without an access token replaces the shared tokens and keeps the access tokens", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("keep")
        yield* store.store(user, makeToken("1"), demo)
        yield* store.store(user, makeToken("2", { accessToken: false }), demo)
        const read = yield* getSome(user, demo)
        assert.strictEqual(secret(read.accessToken?.accessToken), "at-1")
        assert.strictEqual(secret(read.refreshToken), "rt-2")
      }))

    it.effect("parameters select tokens whatever the order of extra parameters", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("params")
        yield* store.store(user, makeToken("x"), { ...demo, parameters: { a: "1", b: "2" } })
        const read = yield* getSome(user, { ...demo, parameters: { b: "2", a: "1" } })
        assert.strictEqual(secret(read.accessToken?.accessToken), "at-x")
        assert.isUndefined((yield* getSome(user, { ...demo, parameters: { a: "1" } })).accessToken)
        assert.isUndefined((yield* getSome(user, { ...demo, scope: "api.write" })).accessToken)
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
        assert.strictEqual(tagOf((yield* getSome(alice, demo)).accessToken?.accessToken), "alice")
        assert.strictEqual(tagOf((yield* getSome(bob, demo)).accessToken?.accessToken), "bob")
        assert.isTrue(Option.isNone(yield* store.get(alicePrefix, demo)))
        yield* store.clear(bob)
        assert.strictEqual(tagOf((yield* getSome(alice, demo)).refreshToken), "alice")
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
        const reader = Effect.forEach(Array.from({ length: writes }), () =>
          Effect.map(store.get(user, demo), (token) => {
            const read = Option.getOrThrow(token)
            reads++
            const tags = new Set([tagOf(read.accessToken?.accessToken), tagOf(read.refreshToken), tagOf(read.idToken)])
            if (tags.size !== 1) mixed++
          }), { discard: true })
        yield* Effect.all([writer, reader, reader], { concurrency: "unbounded", discard: true })
        assert.strictEqual(reads, 2 * writes)
        assert.strictEqual(mixed, 0, `${mixed} of ${reads} reads mixed two writes`)
        assert.strictEqual(tagOf((yield* getSome(user, demo)).refreshToken), `w${writes}`)
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
        assert.isDefined(winner)
        assert.strictEqual(tagOf(read.refreshToken), winner)
        assert.strictEqual(tagOf(read.idToken), winner)
        // sequential writes: the last one wins
        yield* store.store(user, makeToken("late-1"), demo)
        yield* store.store(user, makeToken("late-2"), demo)
        assert.strictEqual(tagOf((yield* getSome(user, demo)).refreshToken), "late-2")
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
        assert.strictEqual(refreshTokens.size, 1)
        reads.forEach((read, i) => assert.strictEqual(secret(read.accessToken?.accessToken), `at-r${i}`))
      }))

    it.effect("clear with parameters removes that access token only", () =>
      Effect.gen(function*() {
        const store = yield* UserTokenStore
        const user = uniqueUser("clear-params")
        yield* store.store(user, makeToken("a"), demo)
        yield* store.store(user, makeToken("b"), other)
        yield* store.clear(user, demo)
        const a = yield* getSome(user, demo)
        assert.isUndefined(a.accessToken)
        assert.strictEqual(secret(a.refreshToken), "rt-b")
        assert.strictEqual(secret((yield* getSome(user, other)).accessToken?.accessToken), "at-b")
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
        assert.isTrue(Option.isNone(yield* store.get(user, demo)))
        assert.isTrue(Option.isNone(yield* store.get(user, other)))
        // the user can sign in again afterwards, without the old access tokens
        yield* store.store(user, makeToken("c"), demo)
        assert.isUndefined((yield* getSome(user, other)).accessToken)
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
          assert.strictEqual(secret((yield* getSome(user, other)).accessToken?.accessToken), "at-e2")
          yield* TestClock.adjust(timeToLive)
          assert.isTrue(Option.isNone(yield* store.get(user, demo)))
          // a sign-in after expiry starts afresh: access tokens of the dead grant are gone
          yield* store.store(user, makeToken("e4", { accessToken: false }), demo)
          assert.isUndefined((yield* getSome(user, other)).accessToken)
          assert.strictEqual(secret((yield* getSome(user, demo)).refreshToken), "rt-e4")
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
          assert.isTrue(Option.isSome(yield* store.get(users[0]!, demo)))
          assert.isTrue(Option.isNone(yield* store.get(users[1]!, demo)))
          assert.isTrue(Option.isSome(yield* store.get(users[capacity]!, demo)))
        }))
    }
  })
