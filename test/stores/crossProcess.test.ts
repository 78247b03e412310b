/**
 * Four Node processes share one Redis (store, client-credentials cache and renewal lock) and hammer the same keys:
 * one token request for all of them, and a rotating refresh token used exactly once.
 */
import { CurrentUser, TokenEncryption, UserTokens, UserTokenStore } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { signIn } from "../support/login.js"
import { redisUserTokensEnvironment, runId } from "../support/stores.js"
import { broadcast, crossProcessTimeout, instanceEnvironment, startInstances } from "./instances.js"

const prefix = `test:${runId()}:xp:`
const key = TokenEncryption.generateKey()
const processes = 4
const calls = 250

const Env = redisUserTokensEnvironment(prefix, key)

const figures = (label: string, value: unknown) => {
  if (process.env.STORES_FIGURES) console.log(`[figures] ${label}: ${JSON.stringify(value)}`)
}

layer(Env, { excludeTestServices: true, timeout: "60 seconds" })("cross-process single flight over Redis", (it) => {
  it.scoped(
    `client credentials: ${processes} processes × ${calls} calls → one token request`,
    () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const instances = yield* startInstances(
          processes,
          instanceEnvironment({ provider, subject: "nobody", prefix, key })
        )
        yield* provider.resetCounters
        const reports = yield* broadcast(instances, { run: "client", calls })
        figures("client credentials", reports.map(({ millis, pid }) => ({ pid, millis })))
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "client_credentials" }), 1)
        assert.deepStrictEqual(reports.map((report) => report.errors), Array(processes).fill({}))
        assert.strictEqual(reports.reduce((sum, report) => sum + report.ok, 0), processes * calls)
        assert.strictEqual(new Set(reports.flatMap((report) => report.tokens)).size, 1, "every caller got one token")
        // a second round is served from the shared cache
        yield* broadcast(instances, { run: "client", calls: 10 })
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "client_credentials" }), 1)
      }),
    crossProcessTimeout
  )

  it.scoped(
    `user tokens at expiry: ${processes} processes × ${calls} calls → one refresh, the grant alive`,
    () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const store = yield* UserTokenStore.UserTokenStore
        const tokens = yield* UserTokens.UserTokens
        const { user } = yield* signIn("alice")
        const instances = yield* startInstances(
          processes,
          instanceEnvironment({ provider, subject: user.subject, prefix, key })
        )
        const params = { resource: IdentityProvider.Resources.demoApi }
        const before = Option.getOrThrow(yield* store.get(CurrentUser.storeKey(user), params))
        // wait (on the real clock: the provider's) until the access token has expired
        yield* Effect.sleep(Math.max(0, before.accessToken!.expiresAt - Date.now() + 100))
        yield* provider.resetCounters
        const reports = yield* broadcast(instances, { run: "user", calls })
        figures("user refresh", reports.map(({ millis, pid }) => ({ pid, millis })))
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 1, "exactly one refresh")
        assert.deepStrictEqual(reports.map((report) => report.errors), Array(processes).fill({}), "no invalid_grant")
        assert.strictEqual(reports.reduce((sum, report) => sum + report.ok, 0), processes * calls)
        assert.strictEqual(new Set(reports.flatMap((report) => report.tokens)).size, 1, "every caller got one token")

        // the rotated refresh token is in the store, alive, and the old one is used up
        const after = Option.getOrThrow(yield* store.get(CurrentUser.storeKey(user), params))
        assert.isFalse((yield* provider.introspect(Redacted.value(before.refreshToken!))).active)
        assert.isTrue((yield* provider.introspect(Redacted.value(after.refreshToken!))).active)
        // the grant is alive: a later forced refresh succeeds
        const forced = Date.now()
        yield* tokens.getFor(user, { forceRenewal: true })
        figures("one forced refresh from the test process (ms)", Date.now() - forced)
        assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 2)
      }),
    crossProcessTimeout
  )
})
