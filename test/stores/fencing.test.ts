/**
 * A holder stalled past its lease never writes after another instance took over. An instance (a child process) takes
 * the renewal lease (300 ms), then freezes as a whole — no timers, no lease extension, as in a long GC pause — for
 * at least 1.5 s and until the test lets it go; meanwhile this process takes the lease over and renews. The frozen
 * instance wakes up to a lost lease and stops: before the provider when it froze before its refresh (the rotating
 * refresh token is spent once, by the instance that took over: no grant lost), before the store when it froze
 * between its refresh and its write (what the other instance stored stands).
 *
 * Everything is ordered by events, not by the clock: the child writes a file when it freezes, and stays frozen until
 * the test writes another, after the takeover is complete.
 */
import { CurrentUser, TokenEncryption, UserTokens, UserTokenStore } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { signIn } from "../support/login.js"
import { rawRedis, redisUserTokensEnvironment, runId, tempDir } from "../support/stores.js"
import type { Stall } from "./instance.worker.js"
import { crossProcessTimeout, instanceEnvironment, startInstances } from "./instances.js"

const key = TokenEncryption.generateKey()
const leaseMillis = 300
const stallMillis = 1_500
const params = { resource: IdentityProvider.Resources.demoApi }

const hash = (token: Redacted.Redacted<string>) =>
  Crypto.createHash("sha256").update(Redacted.value(token)).digest("hex").slice(0, 16)

/** Waits (polling) until the file exists; returns its JSON. */
const fileWritten = (path: string) =>
  Effect.gen(function*() {
    while (!Fs.existsSync(path)) yield* Effect.sleep("10 millis")
    return JSON.parse(Fs.readFileSync(path, "utf8")) as { readonly fencingToken: number; readonly at: number }
  })

/**
 * Signs a user in, has a child instance renew that user's token and freeze where `before` says while holding the
 * lease, renews from this process meanwhile, then lets the child go. Returns what each side saw.
 */
const stalledHolder = (prefix: string, before: Stall["before"]) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const store = yield* UserTokenStore.UserTokenStore
    const tokens = yield* UserTokens.UserTokens
    const redis = yield* rawRedis()
    const { user } = yield* signIn(`fence-${before}`)
    const storeKey = CurrentUser.storeKey(user)
    const [holder] = yield* startInstances(
      1,
      instanceEnvironment({ provider, subject: user.subject, prefix, key, leaseTime: `${leaseMillis} millis` })
    )
    const initial = Option.getOrThrow(yield* store.get(storeKey, params))
    const dir = tempDir("fence")
    yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
    const stall: Stall = {
      before,
      stalledFile: Path.join(dir, "stalled"),
      releaseFile: Path.join(dir, "release"),
      atLeastMillis: stallMillis
    }
    yield* provider.resetCounters

    const holderAnswer = yield* Effect.fork(holder!.send({ run: "user", calls: 1, forceRenewal: true, stall }))
    const frozen = yield* fileWritten(stall.stalledFile)
    // the holder is frozen with its lease: this process waits for the lease to run out, then renews
    const takeover = yield* tokens.getFor(user, { forceRenewal: true })
    const takenOverAt = Date.now()
    const afterTakeover = Option.getOrThrow(yield* store.get(storeKey, params))
    const fencingTokens = Number(yield* Effect.promise(() => redis.get(`${prefix}lock-fencing-token`)))
    Fs.writeFileSync(stall.releaseFile, "")
    const report = yield* Fiber.join(holderAnswer)
    const final = Option.getOrThrow(yield* store.get(storeKey, params))
    return { provider, user, initial, frozen, takeover, takenOverAt, afterTakeover, fencingTokens, report, final }
  })

const rotating = `test:${runId()}:fence-rotating:`

layer(redisUserTokensEnvironment(rotating, key), {
  excludeTestServices: true,
  timeout: "60 seconds"
})("fenced renewal across processes, rotating refresh tokens", (it) => {
  it.scoped(
    "a holder frozen before its refresh wakes to a lost lease and never spends the refresh token",
    () =>
      Effect.gen(function*() {
        const { afterTakeover, final, fencingTokens, frozen, initial, provider, report, takenOverAt, takeover, user } =
          yield* stalledHolder(rotating, "refresh")
        // order of events: frozen holder → takeover complete → holder woken, and only then answering
        assert.isAbove(fencingTokens, frozen.fencingToken, "the takeover acquired the lease after the frozen holder")
        assert.isDefined(report.stalled, "the holder froze")
        assert.isAtLeast(report.stalled!.until, takenOverAt, "the holder stayed frozen until after the takeover")
        // the woken holder stopped before the provider: one refresh in all, the takeover's
        assert.deepStrictEqual(report.errors, { "TokenStoreError:lease": 1 })
        assert.strictEqual(report.ok, 0)
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 1)
        // ... and never wrote: the store holds the takeover's tokens, as it did before the holder woke
        assert.strictEqual(hash(final.accessToken!.accessToken), hash(takeover.accessToken))
        assert.strictEqual(Redacted.value(final.refreshToken!), Redacted.value(afterTakeover.refreshToken!))
        // no grant lost: the first refresh token was spent once, the stored one is alive and renews
        assert.isFalse((yield* provider.introspect(Redacted.value(initial.refreshToken!))).active, "spent once")
        assert.isTrue((yield* provider.introspect(Redacted.value(final.refreshToken!))).active, "the grant is alive")
        const tokens = yield* UserTokens.UserTokens
        yield* tokens.getFor(user, { forceRenewal: true })
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 2)
      }),
    crossProcessTimeout
  )
})

const nonRotating = `test:${runId()}:fence-write:`

layer(redisUserTokensEnvironment(nonRotating, key, { rotateRefreshTokens: false }), {
  excludeTestServices: true,
  timeout: "60 seconds"
})("fenced renewal across processes, before the write", (it) => {
  it.scoped(
    "a holder frozen between its refresh and its write wakes to a lost lease and writes nothing",
    () =>
      Effect.gen(function*() {
        const { final, fencingTokens, frozen, provider, report, takenOverAt, takeover } = yield* stalledHolder(
          nonRotating,
          "write"
        )
        assert.isAbove(fencingTokens, frozen.fencingToken, "the takeover acquired the lease after the frozen holder")
        assert.isAtLeast(report.stalled!.until, takenOverAt, "the holder stayed frozen until after the takeover")
        // both asked the provider (the holder before it froze); only the takeover's token was stored
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 2)
        assert.deepStrictEqual(report.errors, { "TokenStoreError:lease": 1 })
        assert.strictEqual(
          hash(final.accessToken!.accessToken),
          hash(takeover.accessToken),
          "the takeover's write stands"
        )
      }),
    crossProcessTimeout
  )
})
