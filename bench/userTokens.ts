/**
 * P4: 1,000 signed-in users whose tokens expire at once, 20 concurrent callers each → refreshes at the provider
 *     (goal exactly 1,000) and time until every caller has a fresh token.
 * P5: cached user-token get, operations per second, beside the client-credentials figure (P2) of the same run.
 */
import { CurrentUser, UserTokens } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as Effect from "effect/Effect"
import { userTokens } from "../test/support/environment.js"
import { signIn } from "../test/support/login.js"
import { fmt, makeShiftedClock, type Row, timed } from "./support.js"

/** Moved forward to expire every token at once without waiting for it. */
const shiftedClock = makeShiftedClock()

const p4 = Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  const tokens = yield* UserTokens.UserTokens
  const [loginMs, users] = yield* timed(Effect.all(
    Array.from({ length: 1000 }, (_, i) => Effect.map(signIn(`bench-${i}`, { sessionId: `s${i}` }), (l) => l.user)),
    { concurrency: 16 }
  ))
  yield* provider.resetCounters
  yield* Effect.sync(() => shiftedClock.shift(301_000)) // every access token is now expired
  const [settleMs, all] = yield* timed(Effect.all(
    users.flatMap((user) => Array.from({ length: 20 }, () => tokens.get().pipe(CurrentUser.provide(user)))),
    { concurrency: "unbounded" }
  ))
  const refreshes = yield* provider.tokenRequests({ grantType: "refresh_token" })
  return [
    {
      id: "P4",
      what: "1,000 users expire at once, 20 callers each",
      value: `${refreshes} refreshes, settled in ${settleMs.toFixed(0)} ms`,
      baseline: `${all.length} callers served`,
      goal: "exactly 1,000 refreshes",
      met: refreshes === 1000,
      data: { refreshes, settleMillis: settleMs, callers: all.length, loginMillisFor1000: loginMs }
    } satisfies Row,
    users[0]!
  ] as const
})

const p5 = (user: CurrentUser.User) =>
  Effect.gen(function*() {
    const tokens = yield* UserTokens.UserTokens
    const n = 300_000
    const get = tokens.get()
    // the user is provided once, as a websocket connection does for its lifetime
    const loop = Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* get
    }).pipe(CurrentUser.provide(user))
    yield* loop
    const [ms] = yield* timed(loop)
    const ops = n / (ms / 1000)
    return {
      id: "P5",
      what: "cached user token get (memory store)",
      value: `${fmt(ops)} ops/s`,
      data: { opsPerSecond: ops }
    } satisfies Row
  })

export const run = Effect.gen(function*() {
  const [p4Row, user] = yield* p4
  return [p4Row, yield* p5(user)]
  // 1,000 refreshes at once queue at the provider for seconds: a short client timeout would abandon refreshes the
  // provider still completes, and with rotation that loses the grant
}).pipe(Effect.provide(userTokens({ endpoint: { timeout: "60 seconds" } })), Effect.withClock(shiftedClock.clock))
