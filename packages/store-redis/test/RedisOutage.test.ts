/**
 * Redis goes away under a running application — first hung (SIGSTOP: a partition, nothing answers), then dead
 * (SIGKILL: connections refused) — and comes back: every call fails with a typed error within a bounded time,
 * nothing hangs, and afterwards work resumes with every token intact.
 */
import { AccessTokenStore, ClientCredentialsTokens, TokenEndpoint, TokenLock, UserTokenStore } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { RedisStore } from "@effect-atm/store-redis"
import { UserTokenStoreSuite } from "@effect-atm/testing"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type { ChildProcess } from "node:child_process"
import { encryption, freePort, keys, removeDirAfter, startRedisServer, tempDir } from "../../../test/support/stores.js"

const { makeToken, uniqueUser } = UserTokenStoreSuite
const demo = { resource: "urn:effect-atm:demo-api" }
const commandTimeout = 500
/** What "promptly" means here: the command timeout, plus scheduling slack on a busy machine. */
const bound = commandTimeout + 1_000

/** A redis-server of our own on a free port, with an append-only file (so a restart keeps the data). */
const ownRedis = Effect.gen(function*() {
  const dir = tempDir("redis")
  yield* Layer.build(removeDirAfter(dir))
  const port = yield* Effect.promise(freePort)
  let server: ChildProcess = yield* Effect.promise(() => startRedisServer(port, dir))
  yield* Effect.addFinalizer(() => Effect.sync(() => server.kill("SIGKILL")))
  return {
    url: `redis://127.0.0.1:${port}`,
    signal: (signal: NodeJS.Signals) => Effect.sync(() => server.kill(signal)),
    kill: Effect.promise(() => {
      const exited = new Promise((resolve) => server.once("exit", resolve))
      server.kill("SIGKILL")
      return exited
    }),
    restart: Effect.promise(async () => {
      server = await startRedisServer(port, dir)
    })
  }
})

/** Runs `effect`, which must fail with a `TokenStoreError` within `bound` ms; returns how long it took. */
const failsPromptly = <A>(label: string, effect: Effect.Effect<A, { readonly _tag: string }>) =>
  Effect.gen(function*() {
    const started = Date.now()
    const result = yield* Effect.either(effect).pipe(
      Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error(`${label} hung`) }),
      Effect.orDie
    )
    const millis = Date.now() - started
    assert.isTrue(result._tag === "Left", `${label} should fail while Redis is away`)
    if (result._tag === "Left") assert.strictEqual(result.left._tag, "TokenStoreError", label)
    assert.isBelow(millis, bound, `${label} failed within ${bound} ms`)
    return millis
  })

describe("Redis outage", () => {
  it.scopedLive("hung, then dead, then back: typed errors within a bounded time, then every token intact", () =>
    Effect.gen(function*() {
      const redis = yield* ownRedis
      const provider = yield* Effect.map(
        Layer.build(IdentityProvider.layer()),
        Context.get(IdentityProvider.IdentityProvider)
      )
      const services = yield* Layer.build(
        ClientCredentialsTokens.layer({
          clients: {
            machine: {
              issuer: provider.issuer,
              clientId: "machine-basic",
              clientSecret: Redacted.make("machine-basic-secret")
            }
          }
        }).pipe(
          Layer.provide(TokenEndpoint.layer().pipe(Layer.provide(FetchHttpClient.layer))),
          Layer.provideMerge(
            RedisStore.layer({ url: redis.url, prefix: "outage:", commandTimeout: `${commandTimeout} millis` })
          ),
          Layer.provide(encryption({ key: { key: keys.a } }))
        )
      )
      const users = Context.get(services, UserTokenStore.UserTokenStore)
      const clients = Context.get(services, AccessTokenStore.AccessTokenStore)
      const lock = Context.get(services, TokenLock.TokenLock)
      const machine = Context.get(services, ClientCredentialsTokens.ClientCredentialsTokens)

      const people = Array.from({ length: 20 }, (_, i) => uniqueUser(`outage-${i}`))
      yield* Effect.forEach(people, (user) => users.store(user, makeToken(user), demo), { discard: true })
      const ccToken = yield* machine.get("machine")
      assert.strictEqual(yield* provider.tokenRequests({ grantType: "client_credentials" }), 1)

      /** Every user's tokens read back whole: the access, refresh and ID tokens of one write. */
      const intact = Effect.forEach(people, (user) =>
        Effect.map(users.get(user, demo), (read) => {
          const token = Option.getOrThrow(read)
          assert.strictEqual(Redacted.value(token.refreshToken!), `rt-${user}`)
          assert.strictEqual(Redacted.value(token.accessToken!.accessToken), `at-${user}`)
        }), { discard: true })

      const during = uniqueUser("during")
      const everyOperation = (phase: string) =>
        Effect.all({
          get: failsPromptly(`${phase}: get`, users.get(people[0]!, demo)),
          store: failsPromptly(`${phase}: store`, users.store(during, makeToken(phase), demo)),
          clear: failsPromptly(`${phase}: clear`, users.clear(people[1]!, { resource: "urn:test:none" })),
          // a key this instance holds no token for (its fresh tokens are served from memory, Redis or not)
          clientGet: failsPromptly(`${phase}: client token`, machine.get("machine", { scope: "api.write" })),
          clientSet: failsPromptly(`${phase}: client store`, clients.set("other", ccToken)),
          lock: failsPromptly(`${phase}: lock`, lock.withLock("someone")(Effect.void))
        }, { concurrency: "unbounded" })

      /** The client token this instance holds in memory is still handed out: no Redis, no request. */
      const served = Effect.map(machine.get("machine"), (token) => {
        assert.strictEqual(Redacted.value(token.accessToken), Redacted.value(ccToken.accessToken))
      })

      // 1. hung: the process is stopped, the connection stays open, nothing answers
      yield* redis.signal("SIGSTOP")
      const hung = yield* everyOperation("hung")
      yield* served
      yield* redis.signal("SIGCONT")
      yield* intact
      // the write that timed out may still have landed when Redis woke up — whole, never in part
      const late = yield* users.get(during, demo)
      if (Option.isSome(late)) {
        assert.strictEqual(Redacted.value(late.value.refreshToken!), "rt-hung")
        assert.strictEqual(Redacted.value(late.value.accessToken!.accessToken), "at-hung")
      }

      // 2. dead: connections are refused
      yield* redis.kill
      const dead = yield* everyOperation("dead")
      yield* served
      assert.strictEqual(yield* provider.tokenRequests(), 1, "no token request while the store is away")

      // 3. back: the connection is re-established in the background; work resumes
      yield* redis.restart
      const restarted = Date.now()
      yield* users.get(people[0]!, demo).pipe(
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds")))
      )
      const recovered = Date.now() - restarted
      yield* intact
      const after = yield* machine.get("machine")
      assert.strictEqual(Redacted.value(after.accessToken), Redacted.value(ccToken.accessToken), "the shared token")
      assert.strictEqual(
        yield* provider.tokenRequests({ grantType: "client_credentials" }),
        1,
        "no request in all that"
      )
      yield* users.store(people[0]!, makeToken("after"), demo)
      assert.strictEqual(
        Redacted.value(Option.getOrThrow(yield* users.get(people[0]!, demo)).refreshToken!),
        "rt-after"
      )
      // the lock attempts that timed out while Redis hung (and landed when it woke up) left no lease behind
      const locking = Date.now()
      yield* lock.withLock("someone")(Effect.void)
      assert.isBelow(Date.now() - locking, 1_000)

      if (process.env.STORES_FIGURES) {
        console.log(`[figures] outage: ${JSON.stringify({ hung, dead, recoveredMillis: recovered })}`)
      }
    }))
})
