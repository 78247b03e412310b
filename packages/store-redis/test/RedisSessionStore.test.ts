import { SessionStore, TokenEncryption } from "@effect-atm/core"
import { RedisConnection, RedisSessionStore } from "@effect-atm/store-redis"
import { SessionStoreSuite } from "@effect-atm/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { deleteRedisKeysAfter, encryption, keys, rawRedis, redisUrl, runId } from "../../../test/support/stores.js"

const id = runId()
const prefixFor = (label: string) => `test:${id}:${label}:`

const redis = (prefix: string) =>
  RedisSessionStore.layer({ prefix }).pipe(
    Layer.provide(RedisConnection.layer({ url: redisUrl })),
    Layer.provide(deleteRedisKeysAfter(prefix))
  )

SessionStoreSuite.run("Redis", redis(prefixFor("sess-plain")).pipe(Layer.provide(TokenEncryption.layerPlaintext)))
SessionStoreSuite.run(
  "Redis, encrypted",
  redis(prefixFor("sess-enc")).pipe(Layer.provide(encryption({ key: { key: keys.a } })))
)

describe("RedisSessionStore", () => {
  it.scoped("encrypted: the ID token and the claims are not in Redis; the keys expire after the retention", () =>
    Effect.gen(function*() {
      const prefix = prefixFor("sess-raw")
      const context = yield* Layer.build(redis(prefix).pipe(Layer.provide(encryption({ key: { key: keys.a } }))))
      const store = Context.get(context, SessionStore.SessionStore)
      const session = SessionStoreSuite.makeSession({ sid: "sid-raw", now: yield* Clock.currentTimeMillis })
      yield* store.set(session)
      const client = yield* rawRedis()
      const payload = yield* Effect.promise(() => client.hget(`${prefix}session:${session.id}`, "d"))
      assert.isString(payload)
      assert.notInclude(payload!, `id-${session.id}`, "the ID token is in clear")
      assert.notInclude(payload!, "alice@example.com", "the claims are in clear")
      const ttl = yield* Effect.promise(() => client.pttl(`${prefix}session:${session.id}`))
      // idle deadline 10 minutes + 1 day of retention
      assert.isAbove(ttl, 86_400_000 + 500_000)
      assert.isAtMost(ttl, 86_400_000 + 600_000)
      const sidTtl = yield* Effect.promise(() => client.pttl(`${prefix}sessions:sid:sid-raw`))
      assert.isAbove(sidTtl, 86_400_000, "the index set lives as long as its longest session")
    }))
})
