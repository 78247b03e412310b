/**
 * The instance holding the renewal lease dies (SIGKILL) while its refresh request is held open at the provider:
 * its lease runs out, another instance takes over and answers every waiting caller.
 *
 * Asserted as order and causality, not as durations (the machine may be loaded): the lease outlived its holder,
 * the takeover is a new acquisition (a greater fencing token), and the callers were answered while the provider
 * still held the dead holder's request.
 */
import { CurrentUser, TokenEncryption, UserTokens, UserTokenStore } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { signIn } from "../support/login.js"
import { rawRedis, redisUserTokensEnvironment, runId } from "../support/stores.js"
import { crossProcessTimeout, instanceEnvironment, startInstances } from "./instances.js"

const prefix = `test:${runId()}:lease:`
const key = TokenEncryption.generateKey()
// long enough that a loaded machine does not lose the holder's lease before it is killed
const leaseMillis = 3_000
// the provider holds the dead holder's request this long: the takeover must not wait for it
const delayMillis = 12_000

const Env = redisUserTokensEnvironment(prefix, key)

layer(Env, { excludeTestServices: true, timeout: "60 seconds" })("lease holder crash", (it) => {
  it.scoped(
    "the lease holder is killed mid-refresh → its lease runs out, another instance takes over",
    () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const store = yield* UserTokenStore.UserTokenStore
        const tokens = yield* UserTokens.UserTokens
        const redis = yield* rawRedis()
        const { user } = yield* signIn("bob")
        const storeKey = CurrentUser.storeKey(user)
        const params = { resource: IdentityProvider.Resources.demoApi }
        const instances = yield* startInstances(
          4,
          instanceEnvironment({ provider, subject: user.subject, prefix, key, leaseTime: `${leaseMillis} millis` })
        )
        const before = Option.getOrThrow(yield* store.get(storeKey, params))
        yield* Effect.sleep(Math.max(0, before.accessToken!.expiresAt - Date.now() + 100))
        yield* provider.resetCounters
        // the first refresh request is held open at the provider: whoever sends it is "mid-refresh"
        yield* provider.setTokenFault({ _tag: "Delay", millis: delayMillis }, { times: 1 })
        const faultSetAt = Date.now()

        const answers = yield* Effect.fork(Effect.all(
          instances.map((instance) =>
            instance.send({ run: "user", calls: 50 }).pipe(
              Effect.exit,
              Effect.map((exit) => ({ pid: instance.pid, exit, at: Date.now() }))
            )
          ),
          { concurrency: "unbounded" }
        ))

        // the holder is named in its lease (`<fencing token>:<host>:<pid>:<random id>`)
        const lockKey = `${prefix}lock:${storeKey}`
        let owner: string | null = null
        while (owner === null) {
          owner = yield* Effect.promise(() => redis.get(lockKey))
          if (owner === null) yield* Effect.sleep("10 millis")
        }
        const holderPid = Number(/:(\d+):[0-9a-f-]{36}$/.exec(owner)![1])
        const holderFencingToken = Number(owner.split(":")[0])
        const holder = instances.find((instance) => instance.pid === holderPid)!
        // once its refresh request is at the provider (counted on arrival), kill it while the provider holds it
        while ((yield* provider.tokenRequests({ grantType: "refresh_token" })) === 0) yield* Effect.sleep("10 millis")
        holder.child.kill("SIGKILL")
        const killedAt = Date.now()
        // the lease outlives its holder: nobody takes over because of the kill itself, only when the lease runs out
        assert.strictEqual(yield* Effect.promise(() => redis.get(lockKey)), owner, "the dead holder's lease is held")

        const results = yield* Fiber.join(answers)
        const killed = results.find((result) => result.pid === holderPid)!
        const survivors = results.filter((result) => result.pid !== holderPid)
        // the dead instance's callers died with it
        assert.isTrue(Exit.isFailure(killed.exit))
        // every caller of the other instances got the same, new token: no error at all
        assert.strictEqual(survivors.length, 3)
        const reports = survivors.map((survivor) => Exit.getOrElse(survivor.exit, () => assert.fail("crashed")))
        assert.deepStrictEqual(reports.map((report) => report.errors), [{}, {}, {}])
        assert.deepStrictEqual(reports.map((report) => report.ok), [50, 50, 50])
        assert.strictEqual(new Set(reports.flatMap((report) => report.tokens)).size, 1)
        // ... by a new acquisition of the lease (its value could only be replaced once the dead holder's ran out) ...
        const fencingTokens = Number(yield* Effect.promise(() => redis.get(`${prefix}lock-fencing-token`)))
        assert.isAbove(fencingTokens, holderFencingToken, "the lease was acquired again after the holder died")
        // ... while the provider still held the dead holder's request: the takeover did not wait for it
        for (const survivor of survivors) {
          assert.isBelow(survivor.at, faultSetAt + delayMillis, "answered before the provider's hold ended")
        }
        assert.strictEqual(
          yield* provider.tokenRequests({ grantType: "refresh_token" }),
          2,
          "the dead holder's (counted when it arrived) and the takeover's"
        )

        // The dead holder's request, held by the provider, is dropped when its client goes away: it never touches the
        // grant, nothing arrives after the delay, and the refresh token stored by the takeover stays valid.
        yield* Effect.sleep(Math.max(0, killedAt + delayMillis + 500 - Date.now()))
        assert.strictEqual(yield* provider.tokenRequests(), 2)
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 2)
        const after = Option.getOrThrow(yield* store.get(storeKey, params))
        assert.isFalse((yield* provider.introspect(Redacted.value(before.refreshToken!))).active, "used once")
        assert.isTrue((yield* provider.introspect(Redacted.value(after.refreshToken!))).active)
        yield* tokens.getFor(user, { forceRenewal: true })
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 3, "the grant is alive")
      }),
    crossProcessTimeout
  )
})
