/**
 * The bus between instances (Redis pub/sub, PostgreSQL LISTEN/NOTIFY, memory) and the near cache over the shared
 * stores: two "instances" in one process, each with connections and a bus subscription of its own, sharing the real
 * Redis or PostgreSQL under this run's own channel, keys and tables. On the real clock: the backends' own timeouts
 * and the other instance's delivery run on it.
 */
import { ClusterEvents, TokenCache, TokenEncryption, type UserToken, UserTokenStore } from "@effect-atm/core"
import type { TokenStoreError } from "@effect-atm/core/TokenError"
import { RedisClusterEvents, RedisConnection, RedisStore } from "@effect-atm/store-redis"
import { PgClusterEvents, SqlStore } from "@effect-atm/store-sql"
import { UserTokenStoreSuite } from "@effect-atm/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import { deleteRedisKeysAfter, dropPgTablesAfter, pgUrl, redisUrl, runId } from "../support/stores.js"

const { makeToken, uniqueUser } = UserTokenStoreSuite
const id = runId()
const demo = { resource: "urn:effect-atm:demo-api" }

/** A store that counts the reads that reach it. */
const counted = (store: UserTokenStore.UserTokenStore["Type"]) => {
  let reads = 0
  return {
    reads: () => reads,
    store: UserTokenStore.UserTokenStore.of({
      ...store,
      get: (user, params) => Effect.suspend(() => (reads++, store.get(user, params)))
    })
  }
}

interface Backend {
  readonly name: string
  /** One instance's bus and shared store, on connections of its own. */
  readonly instance: Layer.Layer<ClusterEvents.ClusterEvents | UserTokenStore.UserTokenStore>
  /** Removes what the backend stored for this run. */
  readonly cleanup: Layer.Layer<never>
}

const redisPrefix = `test:${id}:bus:`
const pgPrefix = `t${id}_bus_`

const backends: ReadonlyArray<Backend> = [
  {
    name: "Redis",
    instance: Layer.merge(
      RedisClusterEvents.layer({ prefix: redisPrefix }),
      RedisStore.layerUserTokenStore({ prefix: redisPrefix })
    ).pipe(
      Layer.provide(RedisConnection.layer({ url: redisUrl })),
      Layer.provide(TokenEncryption.layerPlaintext),
      Layer.orDie
    ),
    cleanup: deleteRedisKeysAfter(redisPrefix)
  },
  {
    name: "PostgreSQL",
    instance: Layer.merge(
      PgClusterEvents.layer({ tablePrefix: pgPrefix }),
      SqlStore.layer({ tablePrefix: pgPrefix })
    ).pipe(
      Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl) })),
      Layer.provide(TokenEncryption.layerPlaintext),
      Layer.orDie
    ),
    cleanup: dropPgTablesAfter(pgPrefix)
  }
]

/** Builds one instance in the test's scope: its bus, and a near cache over its counted store. */
const start = (backend: Backend, options?: UserTokenStore.NearCacheOptions) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(backend.instance)
    const events = Context.get(context, ClusterEvents.ClusterEvents)
    const inner = counted(Context.get(context, UserTokenStore.UserTokenStore))
    const near = yield* UserTokenStore.makeNearCache(inner.store, options).pipe(
      Effect.provideService(ClusterEvents.ClusterEvents, events)
    )
    return { events, inner, near }
  })

/** Polls until the condition holds: the other instance acts on an event when it arrives, not at a known time. */
const eventually = <E, R>(label: string, condition: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 10_000
    while (!(yield* condition)) {
      if (Date.now() > deadline) return assert.fail(`never: ${label}`)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
  })

const accessTokenOf = (found: Option.Option<UserToken.UserToken>) =>
  Option.isSome(found) && found.value.accessToken !== undefined
    ? Redacted.value(found.value.accessToken.accessToken)
    : undefined

describe("ClusterEvents in memory", () => {
  it.scoped("every subscriber of the process gets each event, as this instance's own", () =>
    Effect.gen(function*() {
      const events = yield* ClusterEvents.makeMemory
      const [a, b] = [yield* events.subscribe, yield* events.subscribe]
      yield* events.publish(new ClusterEvents.SessionEnded({ sessionId: "s-1" }))
      for (const queue of [a, b]) {
        const delivery = yield* Queue.take(queue)
        assert.deepStrictEqual(delivery, { event: new ClusterEvents.SessionEnded({ sessionId: "s-1" }), local: true })
      }
      assert.isFalse(events.distributed)
    }))
})

for (const backend of backends) {
  describe(`ClusterEvents and the near cache on ${backend.name}`, () => {
    it.live(
      "an event published on one instance reaches both, marked as the publisher's own on the publisher",
      () =>
        Effect.gen(function*() {
          yield* Layer.build(backend.cleanup)
          const a = yield* start(backend)
          const b = yield* start(backend)
          const [onA, onB] = [yield* a.events.subscribe, yield* b.events.subscribe]
          yield* a.events.publish(new ClusterEvents.TokensChanged({ user: "alice;s-1" }))
          yield* b.events.publish(new ClusterEvents.SessionEnded({ sessionId: "s-2" }))
          // per instance, events arrive in the order they were published on one connection; across, in either
          const received = (queue: Queue.Dequeue<ClusterEvents.Delivery>) =>
            Effect.map(
              Queue.takeN(queue, 2),
              (all) => [...all].sort((x, y) => x.event._tag.localeCompare(y.event._tag))
            )
          assert.deepStrictEqual(yield* received(onA), [
            { event: new ClusterEvents.SessionEnded({ sessionId: "s-2" }), local: false },
            { event: new ClusterEvents.TokensChanged({ user: "alice;s-1" }), local: true }
          ])
          assert.deepStrictEqual(yield* received(onB), [
            { event: new ClusterEvents.SessionEnded({ sessionId: "s-2" }), local: true },
            { event: new ClusterEvents.TokensChanged({ user: "alice;s-1" }), local: false }
          ])
          assert.isTrue(a.events.distributed)
        }).pipe(Effect.scoped),
      { timeout: 30_000 }
    )

    it.live(
      "repeated gets are served from memory; a write on another instance is seen there",
      () =>
        Effect.gen(function*() {
          yield* Layer.build(backend.cleanup)
          const a = yield* start(backend)
          const b = yield* start(backend)
          const user = uniqueUser("near")
          const onB = yield* b.events.subscribe
          yield* a.near.store(user, makeToken("first", { resource: demo.resource }), demo)
          // B hears of the write (a read racing with that event is read again): only then count
          yield* Queue.take(onB)
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))

          assert.strictEqual(accessTokenOf(yield* b.near.get(user, demo)), "at-first")
          for (let i = 0; i < 100; i++) yield* b.near.get(user, demo)
          assert.strictEqual(b.inner.reads(), 1, "one read reached the store for 101 gets")
          // the writer keeps what it wrote: no read at all
          assert.strictEqual(accessTokenOf(yield* a.near.get(user, demo)), "at-first")
          assert.strictEqual(a.inner.reads(), 0)

          yield* a.near.store(user, makeToken("second", { resource: demo.resource }), demo)
          yield* eventually(
            "instance B sees the token written on A",
            Effect.map(b.near.get(user, demo), (found) => accessTokenOf(found) === "at-second")
          )
          const readsAfter = b.inner.reads()
          yield* b.near.get(user, demo)
          assert.strictEqual(b.inner.reads(), readsAfter, "cached again after the one read")
        }).pipe(Effect.scoped),
      { timeout: 30_000 }
    )

    it.live("a clear on one instance (sign-out) stops the token's use on the other", () =>
      Effect.gen(function*() {
        yield* Layer.build(backend.cleanup)
        const a = yield* start(backend)
        const b = yield* start(backend)
        const user = uniqueUser("signout")
        yield* a.near.store(user, makeToken("t", { resource: demo.resource }), demo)
        assert.strictEqual(accessTokenOf(yield* b.near.get(user, demo)), "at-t")
        yield* a.near.clear(user)
        yield* eventually(
          "instance B no longer hands out the cleared token",
          Effect.map(b.near.get(user, demo), Option.isNone)
        )
        // nothing is cached for a user the store does not know: each get asks the store
        const before = b.inner.reads()
        yield* b.near.get(user, demo)
        assert.strictEqual(b.inner.reads(), before + 1)
      }).pipe(Effect.scoped), { timeout: 30_000 })

    it.live(
      "a write for one resource drops the user's other resources (they share the rotated refresh token)",
      () =>
        Effect.gen(function*() {
          yield* Layer.build(backend.cleanup)
          const a = yield* start(backend)
          const b = yield* start(backend)
          const user = uniqueUser("shared")
          const other = { resource: "urn:effect-atm:other-api" }
          yield* a.near.store(user, makeToken("one", { resource: demo.resource }), demo)
          yield* a.near.store(user, makeToken("one-other", { resource: other.resource }), other)
          const before = yield* b.near.get(user, demo)
          assert.strictEqual(Option.getOrThrow(before).refreshToken!.pipe(Redacted.value), "rt-one-other")
          yield* a.near.store(user, makeToken("two", { resource: other.resource }), other)
          yield* eventually(
            "instance B reads the rotated refresh token for the other resource too",
            Effect.map(b.near.get(user, demo), (found) =>
              Option.isSome(found) && Redacted.value(found.value.refreshToken!) === "rt-two" &&
              accessTokenOf(found) === "at-one")
          )
        }).pipe(Effect.scoped),
      { timeout: 30_000 }
    )
  })
}

describe("the near cache's bounds", () => {
  const memoryInstance = Effect.gen(function*() {
    const inner = counted(UserTokenStore.makeMemory())
    const near = yield* UserTokenStore.makeNearCache(inner.store, { capacity: 2, timeToLive: "10 seconds" }).pipe(
      Effect.provide(ClusterEvents.layerMemory)
    )
    return { inner, near }
  })

  it.scoped("holds at most `capacity` entries, dropping the least recently filled user", () =>
    Effect.gen(function*() {
      const { inner, near } = yield* memoryInstance
      for (const user of ["u1", "u2", "u3"]) {
        yield* inner.store.store(user, makeToken(user, { resource: demo.resource }), demo)
        yield* near.get(user, demo)
      }
      assert.strictEqual(inner.reads(), 3)
      yield* near.get("u2", demo)
      yield* near.get("u3", demo)
      assert.strictEqual(inner.reads(), 3, "the two most recent are held")
      yield* near.get("u1", demo)
      assert.strictEqual(inner.reads(), 4, "the first was dropped")
    }))

  it.scoped("reads the store again after its time to live, even without an event", () =>
    Effect.gen(function*() {
      const { inner, near } = yield* memoryInstance
      yield* inner.store.store("u", makeToken("old", { resource: demo.resource }), demo)
      yield* near.get("u", demo)
      // a write the bus never told of (another process on a memory bus)
      yield* inner.store.store("u", makeToken("new", { resource: demo.resource }), demo)
      assert.strictEqual(accessTokenOf(yield* near.get("u", demo)), "at-old")
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(accessTokenOf(yield* near.get("u", demo)), "at-new")
    }))

  it.scoped("a delivery of Resubscribed (events may have been missed) empties it", () =>
    Effect.gen(function*() {
      let onResubscribed = () => {}
      const events = yield* ClusterEvents.make({
        name: "test",
        distributed: true,
        publish: () => Effect.void,
        subscribe: (handlers) => Effect.sync(() => void (onResubscribed = handlers.onResubscribed))
      })
      const inner = counted(UserTokenStore.makeMemory())
      const near = yield* UserTokenStore.makeNearCache(inner.store).pipe(
        Effect.provideService(ClusterEvents.ClusterEvents, events)
      )
      yield* inner.store.store("u", makeToken("t", { resource: demo.resource }), demo)
      yield* near.get("u", demo)
      yield* near.get("u", demo)
      assert.strictEqual(inner.reads(), 1)
      onResubscribed()
      yield* eventually("the near cache is emptied", Effect.map(near.get("u", demo), () => inner.reads() > 1))
    }))

  it.scoped("under a renewal lock, reads go to the store: a refresh spends the refresh token stored now", () =>
    Effect.gen(function*() {
      const { inner, near } = yield* memoryInstance
      yield* inner.store.store("u", makeToken("old", { resource: demo.resource }), demo)
      yield* near.get("u", demo)
      // another instance refreshed; its event has not arrived yet
      yield* inner.store.store("u", makeToken("rotated", { resource: demo.resource }), demo)
      const cache = yield* TokenCache.make<string, UserToken.UserToken, TokenStoreError>({
        keyOf: (user) => user,
        read: (user) => near.get(user, demo),
        accessToken: (token) => token.accessToken,
        renew: () => Effect.die("not renewed here")
      }, { renewBefore: "1 minute" })
      const outside = yield* near.get("u", demo)
      const underLock = yield* cache.withLock("u")(near.get("u", demo))
      assert.strictEqual(Redacted.value(Option.getOrThrow(outside).refreshToken!), "rt-old")
      assert.strictEqual(Redacted.value(Option.getOrThrow(underLock).refreshToken!), "rt-rotated")
    }))
})
