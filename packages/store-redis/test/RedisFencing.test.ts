/**
 * The Redis lease is fenced: a store write made under a lease is checked in the same script as the write, a failed
 * extension is a lost lease, and a renewal that lost its lease stops before it spends the refresh token.
 */
import { CurrentUser, TokenEncryption, TokenLock, UserTokens, UserTokenStore } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { RedisConnection, RedisStore, RedisTokenLock } from "@effect-atm/store-redis"
import { UserTokenStoreSuite } from "@effect-atm/testing"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { signIn } from "../../../test/support/login.js"
import {
  deleteRedisKeysAfter,
  ownRedisServer,
  rawRedis,
  redisUrl,
  runId,
  webUserTokens
} from "../../../test/support/stores.js"

const { makeToken, uniqueUser } = UserTokenStoreSuite
const demo = { resource: "urn:effect-atm:demo-api" }

/** One application instance on the shared Redis: its own connection, store and lock. */
const instance = (prefix: string) =>
  Effect.map(
    Layer.build(RedisStore.layer({ url: redisUrl, prefix }).pipe(Layer.provide(TokenEncryption.layerPlaintext))),
    (context) => ({
      store: Context.get(context, UserTokenStore.UserTokenStore),
      lock: Context.get(context, TokenLock.TokenLock)
    })
  )

const refreshTokenOf = (token: Option.Option<{ readonly refreshToken?: Redacted.Redacted<string> | undefined }>) =>
  Redacted.value(Option.getOrThrow(token).refreshToken!)

describe("Redis fencing", () => {
  it.scopedLive("a holder whose lease Redis gave to another instance cannot write under it (checked in Redis)", () =>
    Effect.gen(function*() {
      const prefix = `test:${runId()}:fence:`
      yield* Layer.build(deleteRedisKeysAfter(prefix))
      const a = yield* instance(prefix)
      const b = yield* instance(prefix)
      const redis = yield* rawRedis()
      const user = uniqueUser("fenced")

      const [tokenA, tokenB, refused] = yield* a.lock.withLock(user)(Effect.gen(function*() {
        const leaseA = Option.getOrThrow(yield* TokenLock.CurrentLease)
        // held: A's write lands
        yield* a.store.store(user, makeToken("a1"), demo)
        // the lease vanishes from Redis while A still counts on it (its local deadline is far off), and B takes it
        yield* Effect.promise(() => redis.del(`${prefix}lock:${user}`))
        const tokenB = yield* b.lock.withLock(user)(Effect.gen(function*() {
          yield* b.store.store(user, makeToken("b1"), demo)
          return Option.getOrThrow(yield* TokenLock.CurrentLease).fencingToken
        }))
        const refused = yield* Effect.all([
          Effect.flip(a.store.store(user, makeToken("a2"), demo)),
          Effect.flip(a.store.clear(user))
        ])
        return [leaseA.fencingToken, tokenB, refused] as const
      }))

      assert.isAbove(tokenB, tokenA, "the later holder has the greater fencing token")
      for (const error of refused) {
        assert.isTrue(TokenLock.isLeaseLost(error), `refused with ${error.message}`)
        assert.include(error.message, "Redis no longer holds it")
      }
      assert.strictEqual(refreshTokenOf(yield* a.store.get(user, demo)), "rt-b1", "B's write stands")
      // outside any lease, A writes again as before
      yield* a.store.store(user, makeToken("a3"), demo)
      assert.strictEqual(refreshTokenOf(yield* b.store.get(user, demo)), "rt-a3")
    }))

  it.scopedLive("Redis unreachable during an extension: the renewal stops before the provider, the grant lives on", () =>
    Effect.gen(function*() {
      const redis = yield* ownRedisServer
      const provider = yield* Effect.map(
        Layer.build(IdentityProvider.layer()),
        Context.get(IdentityProvider.IdentityProvider)
      )
      // the user's tokens stay in this process (a memory store): only the lease is in Redis
      const memory = UserTokenStore.makeMemory()
      const stalled = yield* Deferred.make<void>()
      const resume = yield* Deferred.make<void>()
      let armed = false
      const stallingStore = UserTokenStore.UserTokenStore.of({
        ...memory,
        // the re-read under the lease waits for the test: Redis dies meanwhile
        get: (user, params) =>
          Effect.flatMap(TokenLock.CurrentLease, (lease) =>
            armed && Option.isSome(lease)
              ? Effect.zipRight(
                Effect.zipRight(Deferred.succeed(stalled, undefined), Deferred.await(resume)),
                memory.get(user, params)
              )
              : memory.get(user, params))
      })
      const services = yield* Layer.build(
        webUserTokens.pipe(
          Layer.provideMerge(Layer.succeed(UserTokenStore.UserTokenStore, stallingStore)),
          Layer.provideMerge(
            RedisTokenLock.layer({ prefix: "fence:", leaseTime: "600 millis" }).pipe(
              Layer.provide(RedisConnection.layer({ url: redis.url, commandTimeout: "300 millis" })),
              Layer.orDie
            )
          ),
          Layer.provideMerge(Layer.succeed(IdentityProvider.IdentityProvider, provider))
        )
      )
      const { user } = yield* signIn("fence-outage").pipe(Effect.provide(services))
      const storeKey = CurrentUser.storeKey(user)
      const before = refreshTokenOf(yield* memory.get(storeKey))
      const tokens = Context.get(services, UserTokens.UserTokens)

      const warnings: Array<string> = []
      const capture = Logger.add(Logger.make(({ message }) => {
        warnings.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
      }))
      armed = true
      const renewal = yield* Effect.fork(
        tokens.getFor(user, { forceRenewal: true }).pipe(Effect.provide(capture))
      )
      yield* Deferred.await(stalled)
      armed = false
      yield* redis.kill
      // the next extension fails: the lock says so, and the lease is lost from then on
      while (!warnings.some((line) => line.includes("A renewal lease was lost"))) yield* Effect.sleep("20 millis")
      assert.isTrue(warnings.some((line) => line.includes("Redis did not extend it")), warnings.join("\n"))
      yield* redis.restart
      yield* Deferred.succeed(resume, undefined)
      const failure = yield* Effect.flip(Fiber.join(renewal))
      assert.isTrue(TokenLock.isLeaseLost(failure), `failed with ${failure.message}`)
      // lost for the failed extension, although Redis is back by now
      assert.include(failure.message, "Redis did not extend it")
      assert.strictEqual(
        yield* provider.tokenRequests({ grantType: "refresh_token" }),
        0,
        "the refresh token was not spent under a lost lease"
      )
      assert.strictEqual(refreshTokenOf(yield* memory.get(storeKey)), before, "nothing was written")

      // Redis is back: the next renewal takes a new lease, spends the refresh token once, and the grant lives on
      const renewed = yield* tokens.getFor(user, { forceRenewal: true }).pipe(
        // the key backs off for a moment after the failure
        Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 50, while: TokenLock.isLeaseLost })
      )
      assert.isTrue(Redacted.value(renewed.accessToken).length > 0)
      assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 1)
      assert.isFalse((yield* provider.introspect(before)).active, "the old refresh token was used once")
      assert.isTrue((yield* provider.introspect(refreshTokenOf(yield* memory.get(storeKey)))).active, "grant alive")
    }))
})
