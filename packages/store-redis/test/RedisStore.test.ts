import { AccessToken, AccessTokenStore, TokenEncryption, TokenLock, UserTokenStore } from "@effect-atm/core"
import { RedisConnection, RedisStore, RedisTokenLock } from "@effect-atm/store-redis"
import { AccessTokenStoreSuite, TokenLockSuite, UserTokenStoreSuite } from "@effect-atm/testing"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import {
  deleteRedisKeysAfter,
  encryption,
  freePort,
  keys,
  rawRedis,
  redisKeys,
  redisUrl,
  runId
} from "../../../test/support/stores.js"

const { makeToken, uniqueUser } = UserTokenStoreSuite
const id = runId()
const prefixFor = (label: string) => `test:${id}:${label}:`
const demo = { resource: "urn:effect-atm:demo-api" }

const redis = (prefix: string, options?: Partial<RedisStore.Options>) =>
  RedisStore.layer({ url: redisUrl, prefix, ...options }).pipe(Layer.provide(deleteRedisKeysAfter(prefix)))

UserTokenStoreSuite.run("Redis", redis(prefixFor("plain")).pipe(Layer.provide(TokenEncryption.layerPlaintext)))

UserTokenStoreSuite.run(
  "Redis, encrypted",
  redis(prefixFor("enc")).pipe(Layer.provide(encryption({ key: { key: keys.a } })))
)

/** The shared client-credentials store on a connection of its own, its keys removed afterwards. */
const redisClients = (prefix: string) =>
  RedisStore.layerAccessTokenStore({ prefix }).pipe(
    Layer.provide(RedisConnection.layer({ url: redisUrl })),
    Layer.provide(deleteRedisKeysAfter(prefix))
  )

AccessTokenStoreSuite.run(
  "Redis shared client-credentials store",
  redisClients(prefixFor("cc-plain")).pipe(Layer.provide(TokenEncryption.layerPlaintext))
)

AccessTokenStoreSuite.run(
  "Redis shared client-credentials store, encrypted",
  redisClients(prefixFor("cc-enc")).pipe(Layer.provide(encryption({ key: { key: keys.a } })))
)

TokenLockSuite.run(
  "RedisTokenLock",
  RedisTokenLock.layer({ prefix: prefixFor("locks") }).pipe(
    Layer.provide(RedisConnection.layer({ url: redisUrl })),
    Layer.provide(deleteRedisKeysAfter(prefixFor("locks")))
  ),
  {
    // what a lease that ran out while its holder stalled looks like in Redis
    loseLease: (key) =>
      Effect.scoped(
        Effect.flatMap(rawRedis(), (client) => Effect.promise(() => client.del(`${prefixFor("locks")}lock:${key}`)))
      )
  }
)

/** The services of a Redis layer, built in the test's scope: one "instance" of an application. */
/** Builds a store in the test's scope; without encryption of its own, it stores plain JSON. */
const instance = <E>(
  layer: Layer.Layer<
    UserTokenStore.UserTokenStore | AccessTokenStore.AccessTokenStore | TokenLock.TokenLock,
    E,
    TokenEncryption.TokenEncryption
  >
) =>
  Effect.map(Layer.build(Layer.provide(layer, TokenEncryption.layerPlaintext)), (context) => ({
    users: Context.get(context, UserTokenStore.UserTokenStore),
    clients: Context.get(context, AccessTokenStore.AccessTokenStore),
    lock: Context.get(context, TokenLock.TokenLock)
  }))

const secrets = ["at-secret", "rt-secret", "id-secret"]

const clientToken = (value: string, now: number, lifetime = 60_000) =>
  new AccessToken.AccessToken({
    accessToken: Redacted.make(value),
    tokenType: "Bearer",
    issuedAt: now,
    expiresAt: now + lifetime
  })

describe("RedisStore", () => {
  it.scoped("with encryption on, no key holds a token in plain text; every value names its key", () =>
    Effect.gen(function*() {
      const prefix = prefixFor("raw")
      yield* Layer.build(deleteRedisKeysAfter(prefix))
      const key = yield* TokenEncryption.make({ key: { key: keys.a } })
      const { clients, users } = yield* instance(
        RedisStore.layer({ url: redisUrl, prefix }).pipe(Layer.provide(encryption({ key: { key: keys.a } })))
      )
      const user = uniqueUser("raw")
      yield* users.store(user, makeToken("secret"), demo)
      yield* clients.set("machine", clientToken("at-secret-client", Date.now()))
      const client = yield* rawRedis()
      const found = yield* redisKeys(client, prefix)
      assert.sameMembers(found, [`${prefix}user:${user}`, `${prefix}cc:machine`])
      const values = [
        ...Object.values(yield* Effect.promise(() => client.hgetall(`${prefix}user:${user}`))),
        (yield* Effect.promise(() => client.get(`${prefix}cc:machine`)))!.slice(44)
      ]
      assert.strictEqual(values.length, 3)
      for (const value of values) {
        for (const secret of secrets) assert.notInclude(value, secret)
        assert.isTrue(value.startsWith(`atm1.${key.keyId}.`))
      }
      assert.strictEqual(
        Redacted.value(Option.getOrThrow(yield* clients.get("machine")).accessToken),
        "at-secret-client"
      )
    }))

  it.scoped("key rotation keeps old entries readable; a value that does not open is a TokenStoreError", () =>
    Effect.gen(function*() {
      const prefix = prefixFor("rotate")
      yield* Layer.build(deleteRedisKeysAfter(prefix))
      const store = (options: TokenEncryption.Options | undefined) =>
        Effect.map(
          instance(
            options === undefined
              ? RedisStore.layer({ url: redisUrl, prefix })
              : RedisStore.layer({ url: redisUrl, prefix }).pipe(Layer.provide(encryption(options)))
          ),
          ({ users }) => users
        )
      const [old, fresh, victim, attacker] = ["old", "fresh", "victim", "attacker"].map(uniqueUser)
      const underA = yield* store({ key: { key: keys.a } })
      yield* underA.store(old!, makeToken("old"), demo)
      yield* underA.store(victim!, makeToken("victim"), demo)
      yield* underA.store(attacker!, makeToken("attacker"), demo)

      const rotated = yield* store({ key: { key: keys.b }, previousKeys: [{ key: keys.a }] })
      assert.strictEqual(Redacted.value(Option.getOrThrow(yield* rotated.get(old!, demo)).refreshToken!), "rt-old")
      yield* rotated.store(fresh!, makeToken("fresh"), demo)

      const onlyB = yield* store({ key: { key: keys.b } })
      assert.isTrue(Option.isSome(yield* onlyB.get(fresh!, demo)))
      assert.include((yield* Effect.flip(onlyB.get(old!, demo))).message, "not configured")

      // the victim's sealed access token copied into the attacker's entry does not open there
      const client = yield* rawRedis()
      const field = `a:${AccessToken.parametersKey(demo)}`
      const stolen = yield* Effect.promise(() => client.hget(`${prefix}user:${victim}`, field))
      yield* Effect.promise(() => client.hset(`${prefix}user:${attacker}`, field, stolen!))
      const error = yield* Effect.flip(underA.get(attacker!, demo))
      assert.strictEqual(error._tag, "TokenStoreError")
      assert.include(error.message, "failed authentication")
      // and a store without encryption does not take a sealed value for anything
      const plain = yield* store(undefined)
      assert.include((yield* Effect.flip(plain.get(victim!, demo))).message, "not configured")
    }))

  it.scopedLive("a user's entry expires its time to live after its last write (on the Redis clock)", () =>
    Effect.gen(function*() {
      const prefix = prefixFor("ttl")
      yield* Layer.build(deleteRedisKeysAfter(prefix))
      const long = yield* instance(RedisStore.layer({ url: redisUrl, prefix, timeToLive: "14 days" }))
      const short = yield* instance(RedisStore.layer({ url: redisUrl, prefix, timeToLive: "300 millis" }))
      const client = yield* rawRedis()
      const user = uniqueUser("ttl")
      yield* long.users.store(user, makeToken("ttl"), demo)
      const ttl = yield* Effect.promise(() => client.pttl(`${prefix}user:${user}`))
      assert.isAbove(ttl, 14 * 86_400_000 - 5_000)
      assert.isAtMost(ttl, 14 * 86_400_000)

      const brief = uniqueUser("brief")
      yield* short.users.store(brief, makeToken("brief"), demo)
      yield* Effect.sleep("200 millis")
      yield* short.users.store(brief, makeToken("brief-2"), { resource: "urn:effect-atm:other-api" })
      yield* Effect.sleep("200 millis")
      assert.isTrue(Option.isSome(yield* short.users.get(brief, demo)), "each write renews the entry")
      yield* Effect.sleep("250 millis")
      assert.isTrue(Option.isNone(yield* short.users.get(brief, demo)))
    }))

  it.scopedLive("client-credentials tokens are shared by instances, expire with the token, and are removed only if same", () =>
    Effect.gen(function*() {
      const prefix = prefixFor("cc")
      yield* Layer.build(deleteRedisKeysAfter(prefix))
      const layer = RedisStore.layer({ url: redisUrl, prefix }).pipe(
        Layer.provide(encryption({ key: { key: keys.a } }))
      )
      const [one, two] = yield* Effect.all([instance(layer), instance(layer)])
      const client = yield* rawRedis()
      const now = Date.now()
      const first = clientToken("cc-first-token", now, 60_000)
      yield* one.clients.set("machine\u001es=api.read", first)
      const shared = Option.getOrThrow(yield* two.clients.get("machine\u001es=api.read"))
      assert.strictEqual(Redacted.value(shared.accessToken), "cc-first-token")
      assert.strictEqual(shared.expiresAt, first.expiresAt)
      const ttl = yield* Effect.promise(() => client.pttl(`${prefix}cc:machine\u001es=api.read`))
      assert.isAbove(ttl, 55_000)
      assert.isAtMost(ttl, 60_000)

      // an instance that saw `first` rejected must not drop the token another instance has since stored
      const second = clientToken("cc-second-token", now)
      yield* two.clients.set("machine\u001es=api.read", second)
      yield* one.clients.remove("machine\u001es=api.read", first)
      assert.isTrue(Option.isSome(yield* one.clients.get("machine\u001es=api.read")))
      yield* one.clients.remove("machine\u001es=api.read", second)
      assert.isTrue(Option.isNone(yield* two.clients.get("machine\u001es=api.read")))
      yield* one.clients.set("k", first)
      yield* one.clients.remove("k")
      assert.isTrue(Option.isNone(yield* one.clients.get("k")))

      // a token that is already expired is not stored at all; a short one is gone when it expires
      yield* one.clients.set("expired", clientToken("cc-expired-token", now - 120_000))
      assert.isTrue(Option.isNone(yield* one.clients.get("expired")))
      yield* one.clients.set("short", clientToken("cc-short-token", Date.now(), 200))
      assert.isTrue(Option.isSome(yield* one.clients.get("short")))
      yield* Effect.sleep("300 millis")
      assert.isTrue(Option.isNone(yield* one.clients.get("short")))
    }))

  it.scopedLive("the lock: one holder at a time across instances; different keys do not wait on each other", () =>
    Effect.gen(function*() {
      const prefix = prefixFor("lock")
      yield* Layer.build(deleteRedisKeysAfter(prefix))
      const layer = RedisStore.layer({ url: redisUrl, prefix })
      const instances = yield* Effect.all(Array.from({ length: 3 }, () => instance(layer)))
      let holders = 0
      let most = 0
      let entered = 0
      const critical = Effect.gen(function*() {
        holders++
        entered++
        most = Math.max(most, holders)
        yield* Effect.sleep("5 millis")
        holders--
      })
      yield* Effect.forEach(
        Array.from({ length: 30 }, (_, i) => instances[i % 3]!.lock.withLock("alice")(critical)),
        (effect) => effect,
        { concurrency: "unbounded", discard: true }
      )
      assert.strictEqual(entered, 30)
      assert.strictEqual(most, 1)

      // while alice's lease is held, bob's is free
      const client = yield* rawRedis()
      const started = Date.now()
      yield* instances[0]!.lock.withLock("alice")(
        Effect.gen(function*() {
          assert.isNotNull(yield* Effect.promise(() => client.get(`${prefix}lock:alice`)))
          yield* instances[1]!.lock.withLock("bob")(Effect.void)
        })
      )
      assert.isBelow(Date.now() - started, 500)
      assert.isNull(yield* Effect.promise(() => client.get(`${prefix}lock:alice`)), "released")
    }))

  it.scopedLive("a lease is extended while its holder works; a dead holder's lease runs out; only the owner releases", () =>
    Effect.gen(function*() {
      const prefix = prefixFor("lease")
      yield* Layer.build(deleteRedisKeysAfter(prefix))
      const layer = RedisStore.layer({ url: redisUrl, prefix, leaseTime: "300 millis", lockTimeout: "5 seconds" })
      const [one, two] = yield* Effect.all([instance(layer), instance(layer)])
      const client = yield* rawRedis()
      const key = `${prefix}lock:alice`

      // a holder working for 1 s (> the 300 ms lease) keeps the others out the whole time
      const events: Array<string> = []
      yield* Effect.all([
        one.lock.withLock("alice")(
          Effect.sleep("1 second").pipe(Effect.zipRight(Effect.sync(() => events.push("one done"))))
        ),
        Effect.sleep("50 millis").pipe(
          Effect.zipRight(two.lock.withLock("alice")(Effect.sync(() => events.push("two in"))))
        )
      ], { concurrency: "unbounded" })
      assert.deepStrictEqual(events, ["one done", "two in"])

      // a crashed holder: its lease is never extended nor released, and runs out
      yield* Effect.promise(() => client.set(key, "crashed-host:1:dead", "PX", 400))
      const started = Date.now()
      yield* two.lock.withLock("alice")(Effect.void)
      const waited = Date.now() - started
      assert.isAtLeast(waited, 300)
      assert.isBelow(waited, 1_000)

      // a holder whose lease was taken over does not delete the new owner's lease when it finishes
      yield* one.lock.withLock("alice")(
        Effect.promise(() => client.set(key, "someone-else", "PX", 5_000))
      )
      assert.strictEqual(yield* Effect.promise(() => client.get(key)), "someone-else")

      // a lease held too long: waiters give up with a typed error after `lockTimeout`
      const impatient = yield* instance(RedisStore.layer({ url: redisUrl, prefix, lockTimeout: "300 millis" }))
      const error = yield* Effect.flip(impatient.lock.withLock("alice")(Effect.void))
      assert.strictEqual(error._tag, "TokenStoreError")
      assert.strictEqual(error.operation, "lock")
      yield* Effect.promise(() => client.del(key))
    }))

  it.scopedLive("the lease names its holder (host and process), for operators and tests", () =>
    Effect.gen(function*() {
      const prefix = prefixFor("owner")
      yield* Layer.build(deleteRedisKeysAfter(prefix))
      const lock = yield* Effect.map(
        Layer.build(RedisTokenLock.layer().pipe(Layer.provide(RedisConnection.layer({ url: redisUrl })))),
        Context.get(TokenLock.TokenLock)
      )
      const client = yield* rawRedis()
      // the default prefix; this key is unique to the run
      const name = `owner-${id}`
      const owner = yield* lock.withLock(name)(Effect.promise(() => client.get(`effect-atm:lock:${name}`)))
      assert.match(owner!, new RegExp(`:${process.pid}:[0-9a-f-]{36}$`))
      assert.isNull(yield* Effect.promise(() => client.get(`effect-atm:lock:${name}`)))
    }))

  it.scopedLive("layerConfig reads REDIS_URL and REDIS_PREFIX; an unreachable Redis fails the layer promptly", () =>
    Effect.gen(function*() {
      const prefix = prefixFor("config")
      yield* Layer.build(deleteRedisKeysAfter(prefix))
      const withEnv = (env: Record<string, string>) =>
        RedisStore.layerConfig().pipe(
          Layer.provide(
            Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))
          )
        )
      const { users } = yield* instance(withEnv({ REDIS_URL: redisUrl, REDIS_PREFIX: prefix }))
      const user = uniqueUser("config")
      yield* users.store(user, makeToken("config"), demo)
      const client = yield* rawRedis()
      assert.deepStrictEqual(yield* redisKeys(client, prefix), [`${prefix}user:${user}`])

      const port = yield* Effect.promise(freePort)
      const started = Date.now()
      const error = yield* Effect.flip(
        instance(withEnv({ REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_CONNECT_TIMEOUT: "1 second" }))
      )
      assert.strictEqual(error._tag, "TokenStoreError")
      assert.isBelow(Date.now() - started, 2_000)
    }))
})
