/**
 * P4: 1,000 signed-in users whose tokens expire at once, 20 concurrent callers each → refreshes at the provider
 *     (goal exactly 1,000) and time until every caller has a fresh token.
 * P5: cached user-token get (memory store), operations per second, beside a cached client-credentials get in the
 *     same run, rounds interleaved; ratio user / client-credentials (goal ≥ 0.5).
 */
import { ClientCredentialsTokens, CurrentUser, UserTokens } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { userTokens } from "../test/support/environment.js"
import { signIn } from "../test/support/login.js"
import { benchTokensLayer, fmt, makeShiftedClock, median, type Row, timed } from "./support.js"

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

/** Rounds of P5, alternating which loop goes first; the figure is the median round's. */
const p5Rounds = 7

export const p5 = (user: CurrentUser.User) =>
  Effect.gen(function*() {
    const tokens = yield* UserTokens.UserTokens
    const clientTokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
    const n = 200_000
    // both as a user writes them: `yield*` in an Effect.gen loop; the user is provided once, as a websocket
    // connection does for its lifetime
    const userGet = tokens.get()
    const userLoop = Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* userGet
    }).pipe(CurrentUser.provide(user))
    const clientGet = clientTokens.get("bench")
    const clientLoop = Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* clientGet
    })
    yield* userLoop // warm up
    yield* clientLoop
    const userMs: Array<number> = []
    const clientMs: Array<number> = []
    for (let round = 0; round < p5Rounds; round++) {
      if (round % 2 === 0) {
        userMs.push((yield* timed(userLoop))[0])
        clientMs.push((yield* timed(clientLoop))[0])
      } else {
        clientMs.push((yield* timed(clientLoop))[0])
        userMs.push((yield* timed(userLoop))[0])
      }
    }
    const ratios = userMs.map((ms, i) => clientMs[i]! / ms)
    const userOps = n / (median(userMs) / 1000)
    const clientOps = n / (median(clientMs) / 1000)
    const ratio = median(ratios)
    return {
      id: "P5",
      what: "cached user token get (memory store) / client-credentials get",
      value: `${fmt(userOps)} ops/s`,
      baseline: `${fmt(clientOps)} ops/s client-credentials get`,
      ratio,
      goal: "ratio ≥ 0.5",
      met: ratio >= 0.5,
      data: {
        opsPerSecond: userOps,
        clientCredentialsOpsPerSecond: clientOps,
        ratios,
        ratioRange: [Math.min(...ratios), Math.max(...ratios)],
        rounds: p5Rounds,
        callsPerRound: n
      }
    } satisfies Row
  })

export const run = Effect.gen(function*() {
  const [p4Row, user] = yield* p4
  return [p4Row, yield* p5(user)]
  // 1,000 refreshes at once queue at the provider for seconds: a short client timeout would abandon refreshes the
  // provider still completes, and with rotation that loses the grant
}).pipe(
  Effect.provide(Layer.merge(userTokens({ endpoint: { timeout: "60 seconds" } }), benchTokensLayer)),
  Effect.withClock(shiftedClock.clock)
)
