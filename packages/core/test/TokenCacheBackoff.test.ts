import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { AccessToken } from "../src/AccessToken.js"
import * as TokenCache from "../src/TokenCache.js"
import { TokenEndpointUnavailable, TokenRequestRejected } from "../src/TokenError.js"

type Failure = TokenEndpointUnavailable | TokenRequestRejected

const outage = (retryAfter?: number) =>
  Object.assign(
    new TokenEndpointUnavailable({
      operation: "client_credentials",
      clientId: "worker",
      endpoint: "http://127.0.0.1/token",
      status: 503,
      reason: "Service Unavailable"
    }),
    retryAfter === undefined ? {} : { retryAfter }
  )

const rejection = () =>
  new TokenRequestRejected({
    operation: "client_credentials",
    clientId: "worker",
    endpoint: "http://127.0.0.1/token",
    status: 400,
    error: "invalid_scope"
  })

/** A backend whose renewals are counted (the provider's requests) and fail with `failWith` while it is set. */
const makeBackend = (lifetimeMillis = 300_000) => {
  const values = new Map<string, AccessToken>()
  const state: { failWith: (() => Failure) | undefined; requests: number } = { failWith: undefined, requests: 0 }
  let serial = 0
  const backend: TokenCache.Backend<string, AccessToken, Failure> = {
    keyOf: (key) => key,
    read: (key) => Effect.sync(() => Option.fromNullable(values.get(key))),
    accessToken: (token) => token,
    renew: (key) =>
      Effect.gen(function*() {
        state.requests++
        if (state.failWith !== undefined) return yield* Effect.fail(state.failWith())
        const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        const token = new AccessToken({
          accessToken: Redacted.make(`${key}#${++serial}`),
          tokenType: "Bearer",
          issuedAt: now,
          expiresAt: now + lifetimeMillis
        })
        values.set(key, token)
        return token
      })
  }
  return { backend, state, values }
}

const value = (token: AccessToken) => Redacted.value(token.accessToken)
const noJitter = { renewBefore: "60 seconds", backoff: { initial: "1 second", max: "30 seconds", jitter: 0 } } as const
const callers = <E>(n: number, effect: Effect.Effect<AccessToken, E>) =>
  Effect.all(Array.from({ length: n }, () => Effect.either(effect)), { concurrency: "unbounded" })

describe("TokenCache backoff", () => {
  it.scoped("within the backoff window 1,000 callers fail fast with the same error and no request reaches the provider", () =>
    Effect.gen(function*() {
      const { backend, state } = makeBackend()
      const cache = yield* TokenCache.make(backend, noJitter)
      state.failWith = () => outage()
      const first = yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 1)
      const results = yield* callers(1000, cache.get("a"))
      assert.isTrue(results.every((result) => result._tag === "Left" && result.left === first), "the same error")
      assert.strictEqual(state.requests, 1, "no request while the window is open")
      // a forced renewal (a 401 from an API) is backed off as well
      assert.strictEqual(yield* Effect.flip(cache.renew("a")), first)
      assert.strictEqual(state.requests, 1)
      yield* TestClock.adjust("999 millis")
      yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 1)
      yield* TestClock.adjust("1 millis")
      yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 2, "one request when the first window (1 s) ends")
      yield* TestClock.adjust("1999 millis")
      yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 2, "the second window is 2 s")
      yield* TestClock.adjust("1 millis")
      state.failWith = undefined
      yield* cache.get("a")
      assert.strictEqual(state.requests, 3)
      // success resets the window: the next outage starts again at 1 s
      yield* TestClock.adjust("310 seconds") // the token expired: nothing to serve
      state.failWith = () => outage()
      yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 4)
      yield* TestClock.adjust("1 second")
      yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 5)
    }))

  it.scoped("windows grow exponentially up to max: 14 requests in 5 minutes of outage, 5 in 30 seconds", () =>
    Effect.gen(function*() {
      const { backend, state } = makeBackend()
      const cache = yield* TokenCache.make(backend, noJitter)
      state.failWith = () => outage()
      for (let second = 0; second < 300; second++) {
        yield* Effect.either(cache.get("a"))
        yield* TestClock.adjust("1 second")
      }
      // 0, 1, 3, 7, 15, 31, then every 30 s: 61, 91, ..., 271
      assert.strictEqual(state.requests, 14)
    }))

  it.scoped("a provider's Retry-After makes the window at least that long", () =>
    Effect.gen(function*() {
      const { backend, state } = makeBackend()
      const cache = yield* TokenCache.make(backend, noJitter)
      state.failWith = () => outage(10_000)
      yield* Effect.flip(cache.get("a"))
      yield* TestClock.adjust("9999 millis")
      yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 1)
      yield* TestClock.adjust("1 millis")
      yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 2)
    }))

  it.scoped("jitter only shortens a window, never lengthens it", () =>
    Effect.gen(function*() {
      const { backend, state } = makeBackend()
      const cache = yield* TokenCache.make(backend, {
        renewBefore: "60 seconds",
        backoff: { initial: "10 seconds", jitter: 0.5 }
      })
      state.failWith = () => outage()
      yield* Effect.flip(cache.get("a"))
      yield* TestClock.adjust("4999 millis")
      yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 1, "at least half of the window")
      yield* TestClock.adjust("5001 millis")
      yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 2, "at most the whole window")
    }))

  it.scoped("non-transient failures are neither backed off nor cached", () =>
    Effect.gen(function*() {
      const { backend, state } = makeBackend()
      const cache = yield* TokenCache.make(backend, noJitter)
      state.failWith = rejection
      const first = yield* Effect.flip(cache.get("a"))
      const second = yield* Effect.flip(cache.get("a"))
      assert.strictEqual(first._tag, "TokenRequestRejected")
      assert.notStrictEqual(second, first)
      assert.strictEqual(state.requests, 2)
    }))

  it.scoped("backoff: false asks the provider on every call", () =>
    Effect.gen(function*() {
      const { backend, state } = makeBackend()
      const cache = yield* TokenCache.make(backend, { renewBefore: "60 seconds", backoff: false })
      state.failWith = () => outage()
      for (let i = 0; i < 5; i++) yield* Effect.flip(cache.get("a"))
      assert.strictEqual(state.requests, 5)
    }))

  it.scoped("a token inside its renewal window is served while renewal fails; renewal is retried in the background", () =>
    Effect.gen(function*() {
      const { backend, state } = makeBackend(300_000)
      const cache = yield* TokenCache.make(backend, { ...noJitter, memoize: true })
      const held = yield* cache.get("a")
      yield* TestClock.adjust("240 seconds") // inside the 60 s renewal window, 60 s before expiry
      state.failWith = () => outage()
      const during = yield* callers(200, cache.get("a"))
      assert.isTrue(during.every((result) => result._tag === "Right" && value(result.right) === value(held)))
      assert.strictEqual(state.requests, 2, "one renewal attempt for 200 callers")
      // the background retry runs when the window ends, without any caller
      yield* TestClock.adjust("1 second")
      assert.strictEqual(state.requests, 3)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(state.requests, 4)
      // the provider is back: the next background retry gets a new token, and callers are served it
      state.failWith = undefined
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(state.requests, 5)
      const after = yield* cache.get("a")
      assert.notStrictEqual(value(after), value(held))
      assert.strictEqual(state.requests, 5, "the renewed token is served from the cache")
      yield* TestClock.adjust("60 seconds")
      assert.strictEqual(state.requests, 5, "no background retries after success")
    }))

  it.scoped("an expired token is never served, whatever the outage", () =>
    Effect.gen(function*() {
      const { backend, state } = makeBackend(300_000)
      const cache = yield* TokenCache.make(backend, noJitter)
      const held = yield* cache.get("a")
      yield* TestClock.adjust("270 seconds")
      state.failWith = () => outage()
      assert.strictEqual(value(yield* cache.get("a")), value(held))
      yield* TestClock.adjust("29999 millis") // 1 ms before expiry
      assert.strictEqual(value(yield* cache.get("a")), value(held))
      yield* TestClock.adjust("1 millis") // expired
      const results = yield* callers(50, cache.get("a"))
      assert.isTrue(
        results.every((result) => result._tag === "Left" && result.left._tag === "TokenEndpointUnavailable")
      )
      yield* TestClock.adjust("1 hour")
      const later = yield* Effect.either(cache.get("a"))
      assert.strictEqual(later._tag, "Left")
    }))

  it.scoped("a renewal that fails transiently after the token expired during it fails rather than serving it", () =>
    Effect.gen(function*() {
      const { backend, state, values } = makeBackend(300_000)
      const slow: TokenCache.Backend<string, AccessToken, Failure> = {
        ...backend,
        renew: (key, current) => Effect.zipRight(Effect.sleep("20 seconds"), backend.renew(key, current))
      }
      const cache = yield* TokenCache.make(slow, noJitter)
      values.set(
        "a",
        new AccessToken({
          accessToken: Redacted.make("held-token"),
          tokenType: "Bearer",
          issuedAt: 0,
          expiresAt: 10_000
        })
      )
      yield* TestClock.adjust("9 seconds")
      state.failWith = () => outage()
      const fiber = yield* Effect.fork(Effect.either(cache.get("a")))
      yield* TestClock.adjust("20 seconds")
      const result = yield* fiber
      assert.strictEqual(result._tag, "Left")
    }))
})
