/**
 * The conformance suite every `SessionStore` passes, for your own store in your own vitest: a session is read back
 * intact, expiry (idle and absolute) is enforced by the store on the Effect `Clock`, removal hands a session to
 * exactly one caller, sessions are found by subject and by provider session id (`sid`), and expired sessions are
 * handed out once by `takeExpired`, for their tokens to be revoked; a one-time id is claimed by exactly one caller
 * until its time passes (`claimOnce`), or until that claim is given back (`releaseClaim`).
 *
 * @since 0.3.0
 */
import { Session } from "@effect-atm/core/Session"
import { SessionStore } from "@effect-atm/core/SessionStore"
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
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /** How long each test, and building or releasing the layer, may take. Default: 30 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * A session for the suite's tests (and yours): `subject` and `sid` as given, an ID token `id-<id>`, created at
 * `now` (default: 0), idle for `idle` (default 10 minutes), absolute after `absolute` (default 1 hour).
 *
 * @since 0.3.0
 * @category helpers
 */
export const makeSession = (options: {
  readonly id?: string | undefined
  readonly subject?: string | undefined
  readonly sid?: string | undefined
  readonly now?: number | undefined
  readonly idleMillis?: number | undefined
  readonly absoluteMillis?: number | undefined
} = {}): Session => {
  const id = options.id ?? unique("session")
  const now = options.now ?? 0
  return new Session({
    id,
    subject: options.subject ?? unique("subject"),
    claims: {
      name: "Alice Example",
      email: "alice@example.com",
      groups: ["a", "b"],
      address: { locality: "Zürich" },
      ...(options.sid === undefined ? {} : { sid: options.sid })
    },
    idToken: Redacted.make(`id-${id}`),
    createdAt: now,
    lastSeenAt: now,
    idleExpiresAt: now + (options.idleMillis ?? 600_000),
    absoluteExpiresAt: now + (options.absoluteMillis ?? 3_600_000)
  })
}

/** `makeSession` at the current time of the test's clock (which the tests of one layer share). */
const fresh = (options: Parameters<typeof makeSession>[0] = {}) =>
  Effect.map(Clock.currentTimeMillis, (now) => makeSession({ ...options, now }))

const ids = (sessions: ReadonlyArray<Session>) => sessions.map((session) => session.id).sort()

/**
 * Registers the suite over the store `layer` builds: a `describe` block named after the store, a test per rule,
 * one store for all of them. Ids and subjects are unique per test and run, so the store may hold other data.
 *
 * @example
 * ```ts
 * // test/MySessionStore.test.ts
 * import type { SessionStore } from "@effect-atm/core"
 * import { SessionStoreSuite } from "@effect-atm/testing"
 * import type { Layer } from "effect"
 *
 * declare const MySessionStoreLive: Layer.Layer<SessionStore.SessionStore>
 *
 * SessionStoreSuite.run("MySessionStore", MySessionStoreLive)
 * ```
 *
 * @since 0.3.0
 * @category suites
 */
export const run = <E>(name: string, layer: Layer.Layer<SessionStore, E>, options: Options = {}): void => {
  const timeout = Duration.toMillis(Duration.decode(options.timeout ?? Duration.seconds(30)))
  it.layer(layer, { timeout })(`SessionStore conformance: ${name}`, (layerIt) => {
    const it = { effect: withTimeout(layerIt.effect, timeout) }

    it.effect("a session is read back with every field intact; an unknown id is None", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const session = yield* fresh({ sid: unique("sid") })
        assert.isTrue(Option.isNone(yield* store.get(session.id)), "a session never stored is not None")
        yield* store.set(session)
        const read = Option.getOrThrowWith(yield* store.get(session.id), () => new Error("get returned None"))
        assert.instanceOf(read, Session, "not read back as a Session")
        assert.strictEqual(read.id, session.id)
        assert.strictEqual(read.subject, session.subject, "subject did not round-trip")
        assert.deepStrictEqual(read.claims, session.claims, "claims did not round-trip")
        assert.strictEqual(read.providerSessionId, session.providerSessionId, "the sid claim did not round-trip")
        assert.isTrue(Redacted.isRedacted(read.idToken), "the ID token is not Redacted")
        assert.strictEqual(Redacted.value(read.idToken!), `id-${session.id}`, "the ID token did not round-trip")
        assert.strictEqual(read.createdAt, session.createdAt)
        assert.strictEqual(read.lastSeenAt, session.lastSeenAt)
        assert.strictEqual(read.idleExpiresAt, session.idleExpiresAt)
        assert.strictEqual(read.absoluteExpiresAt, session.absoluteExpiresAt)
        assert.isTrue(Option.isNone(yield* store.get(unique("nobody"))), "an unknown id is not None")
      }))

    it.effect("set replaces a session: a slid idle deadline keeps it alive", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const session = yield* fresh()
        yield* store.set(session)
        yield* TestClock.adjust("9 minutes")
        const now = yield* Clock.currentTimeMillis
        const touched = new Session({ ...session, lastSeenAt: now, idleExpiresAt: now + 600_000 })
        yield* store.set(touched)
        yield* TestClock.adjust("9 minutes")
        const read = yield* store.get(session.id)
        assert.isTrue(Option.isSome(read), "the session slid forward expired at its first idle deadline")
        assert.strictEqual(Option.getOrThrow(read).lastSeenAt, now, "set did not replace the session")
      }))

    it.effect("expiry is enforced by the store: idle, and absolute whatever the idle deadline", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const idle = yield* fresh()
        const absolute = yield* fresh({ idleMillis: 7_200_000, absoluteMillis: 1_200_000 })
        yield* store.set(idle)
        yield* store.set(absolute)
        yield* TestClock.adjust("10 minutes")
        assert.isTrue(Option.isNone(yield* store.get(idle.id)), "a session past its idle deadline was returned")
        assert.isTrue(Option.isSome(yield* store.get(absolute.id)), "a live session was not returned")
        yield* TestClock.adjust("10 minutes")
        assert.isTrue(Option.isNone(yield* store.get(absolute.id)), "a session past its absolute deadline was returned")
        assert.deepStrictEqual(
          ids(yield* store.findBySubject(idle.subject)),
          [],
          "findBySubject returned an expired one"
        )
      }))

    it.effect("remove returns the session once: of concurrent removals, exactly one gets it", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const session = yield* fresh()
        yield* store.set(session)
        const results = yield* Effect.all(Array.from({ length: 8 }, () => store.remove(session.id)), {
          concurrency: "unbounded"
        })
        const winners = results.filter(Option.isSome)
        assert.strictEqual(winners.length, 1, `${winners.length} removals got the session`)
        assert.strictEqual(winners[0]!.value.subject, session.subject)
        assert.isTrue(Option.isNone(yield* store.get(session.id)), "a removed session is still returned")
        assert.isTrue(Option.isNone(yield* store.remove(session.id)), "a second removal got it again")
        assert.deepStrictEqual(ids(yield* store.findBySubject(session.subject)), [], "still found by subject")
      }))

    it.effect("an expired session can still be removed, once (its tokens are then revoked)", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const session = yield* fresh()
        yield* store.set(session)
        yield* TestClock.adjust("11 minutes")
        assert.isTrue(Option.isSome(yield* store.remove(session.id)), "an expired session is lost to its remover")
        assert.isTrue(Option.isNone(yield* store.remove(session.id)))
      }))

    it.effect("sessions are found by subject and by provider session id, live ones only", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const subject = unique("subject")
        const sid = unique("sid")
        const a = yield* fresh({ subject, sid })
        const b = yield* fresh({ subject, sid: unique("sid"), idleMillis: 3_000_000 })
        const c = yield* fresh({ subject: unique("other"), sid })
        const short = yield* fresh({ subject, sid, idleMillis: 60_000 })
        for (const session of [a, b, c, short]) yield* store.set(session)
        // touching a session does not list it twice
        yield* store.set(new Session({ ...a, lastSeenAt: a.lastSeenAt + 1 }))
        yield* TestClock.adjust("2 minutes")
        assert.deepStrictEqual(ids(yield* store.findBySubject(subject)), ids([a, b]), "findBySubject")
        assert.deepStrictEqual(ids(yield* store.findByProviderSession(sid)), ids([a, c]), "findByProviderSession")
        assert.deepStrictEqual(ids(yield* store.findBySubject(unique("nobody"))), [])
        assert.deepStrictEqual(ids(yield* store.findByProviderSession(unique("nosid"))), [])
        yield* store.remove(a.id)
        assert.deepStrictEqual(ids(yield* store.findBySubject(subject)), ids([b]), "a removed session is still found")
        assert.deepStrictEqual(ids(yield* store.findByProviderSession(sid)), ids([c]))
        yield* store.remove(b.id)
        yield* store.remove(c.id)
        yield* store.remove(short.id)
      }))

    it.effect("takeExpired hands each expired session to exactly one caller, and leaves live ones", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const expired = yield* Effect.all(Array.from({ length: 12 }, () => fresh({ idleMillis: 60_000 })))
        const live = yield* fresh({ idleMillis: 3_600_000 })
        for (const session of [...expired, live]) yield* store.set(session)
        yield* TestClock.adjust("2 minutes")
        const batches = yield* Effect.all(Array.from({ length: 4 }, () => store.takeExpired(5)), {
          concurrency: "unbounded"
        })
        let taken = batches.flat()
        for (const batch of batches) assert.isAtMost(batch.length, 5, "takeExpired returned more than its limit")
        // what is left, in further rounds
        for (let round = 0; round < 20; round++) {
          const more = yield* store.takeExpired(100)
          if (more.length === 0) break
          taken = [...taken, ...more]
        }
        const mine = new Set(expired.map((session) => session.id))
        const takenMine = taken.filter((session) => mine.has(session.id))
        assert.strictEqual(new Set(takenMine.map((s) => s.id)).size, takenMine.length, "a session was taken twice")
        assert.deepStrictEqual(ids(takenMine), ids(expired), "an expired session was not taken")
        assert.isFalse(taken.some((session) => session.id === live.id), "a live session was taken")
        assert.isTrue(Option.isSome(yield* store.get(live.id)), "the live session is gone")
        assert.strictEqual(Redacted.value(takenMine[0]!.idToken!), `id-${takenMine[0]!.id}`, "taken sessions are whole")
        for (const session of expired) {
          assert.isTrue(Option.isNone(yield* store.remove(session.id)), "a taken session was still there")
        }
        yield* store.remove(live.id)
      }))

    it.effect("claimOnce: of concurrent claims of a key exactly one succeeds, until its time passes", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = unique("jti")
        const until = (yield* Clock.currentTimeMillis) + 180_000
        const results = yield* Effect.all(Array.from({ length: 8 }, () => store.claimOnce(key, until)), {
          concurrency: "unbounded"
        })
        assert.strictEqual(results.filter((claimed) => claimed).length, 1, "not exactly one claim succeeded")
        assert.isTrue(yield* store.claimOnce(unique("jti"), until), "another key is not claimed")
        yield* TestClock.adjust("2 minutes")
        assert.isFalse(yield* store.claimOnce(key, until), "a claim was forgotten before its time")
        yield* TestClock.adjust("1 minute")
        const again = (yield* Clock.currentTimeMillis) + 60_000
        assert.isTrue(yield* store.claimOnce(key, again), "a claim past its time was not forgotten")
        assert.isFalse(yield* store.claimOnce(key, again), "the renewed claim was not kept")
        // the sweep forgets claims past their time, and keeps live ones
        yield* TestClock.adjust("2 minutes")
        yield* store.takeExpired(100)
        assert.isTrue(yield* store.claimOnce(key, (yield* Clock.currentTimeMillis) + 60_000))
        assert.isFalse(yield* store.claimOnce(key, (yield* Clock.currentTimeMillis) + 60_000))
      }))

    it.effect("releaseClaim gives a claim back at once, and never another claim of the key", () =>
      Effect.gen(function*() {
        const store = yield* SessionStore
        const key = unique("jti")
        const until = (yield* Clock.currentTimeMillis) + 180_000
        yield* store.releaseClaim(unique("jti"), until)
        assert.isTrue(yield* store.claimOnce(key, until), "releasing an unknown key claimed it")
        yield* store.releaseClaim(key, until + 1)
        assert.isFalse(yield* store.claimOnce(key, until), "a release naming another claim gave this one back")
        yield* store.releaseClaim(key, until)
        const results = yield* Effect.all(Array.from({ length: 8 }, () => store.claimOnce(key, until)), {
          concurrency: "unbounded"
        })
        assert.strictEqual(
          results.filter((claimed) => claimed).length,
          1,
          "a released key is not claimed again by exactly one of concurrent claims"
        )
        assert.isFalse(yield* store.claimOnce(key, until), "the claim after the release was not kept")
        // a claim past its time, taken over by a later one: giving back the first keeps the later
        yield* TestClock.adjust("3 minutes")
        const later = (yield* Clock.currentTimeMillis) + 180_000
        assert.isTrue(yield* store.claimOnce(key, later), "a claim past its time was not forgotten")
        yield* store.releaseClaim(key, until)
        assert.isFalse(yield* store.claimOnce(key, later + 1), "giving back an old claim released the later one")
        yield* store.releaseClaim(key, later)
        yield* store.releaseClaim(key, later)
        assert.isTrue(yield* store.claimOnce(key, later), "the later claim was not given back")
        // released past its time: nothing changes (the key could be claimed anyway)
        yield* TestClock.adjust("4 minutes")
        yield* store.releaseClaim(key, later)
        assert.isTrue(yield* store.claimOnce(key, (yield* Clock.currentTimeMillis) + 60_000))
        assert.isFalse(yield* store.claimOnce(key, (yield* Clock.currentTimeMillis) + 60_000))
      }))
  })
}
