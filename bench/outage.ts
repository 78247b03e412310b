/**
 * P9: a provider outage while 200 callers call continuously (real clock, loopback, the embedded provider), side by
 * side in one run: one client-credentials client without backoff, one with the default backoff (1 s doubling to
 * 30 s, 20% jitter). Both hold a token that has just entered its renewal window (valid for 59 s more) when the
 * token endpoint starts answering 503. Counted per client: the requests that reach the provider during the outage
 * (goal with backoff: ≤ 12), and the callers' errors while the held token is still valid (goal: 0).
 *
 * The outage lasts `P9_OUTAGE_SECONDS` (default 30, at most 55 so that the held token outlives it); e.g.
 * `P9_OUTAGE_SECONDS=5 npm run bench outage` for a quick run. The token is moved into its renewal window by
 * shifting the clock the library reads (a real clock plus an offset), not by waiting.
 */
import { AccessTokenManagement, ClientCredentialsTokens } from "@effect-atm/core"
import type { AccessToken } from "@effect-atm/core/AccessToken"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { fmt, makeShiftedClock, type Row } from "./support.js"

const outageSeconds = Math.min(55, Math.max(1, Number(process.env.P9_OUTAGE_SECONDS ?? 30) || 30))
const callers = 200
const pauseMillis = 10

const shiftedClock = makeShiftedClock()

interface Stats {
  calls: number
  errors: number
  errorsWhileValid: number
  expiredServed: number
  requests: number
  recoveryMillis: number | undefined
}

const managerWith = (client: { readonly clientId: string; readonly clientSecret: string }, backoff: boolean) =>
  Layer.unwrapEffect(
    Effect.map(IdentityProvider.IdentityProvider, (provider) =>
      AccessTokenManagement.layerClientCredentialsMemory({
        clients: {
          bench: {
            tokenEndpoint: provider.tokenEndpoint,
            clientId: client.clientId,
            clientSecret: Redacted.make(client.clientSecret),
            authentication: "client_secret_post",
            scope: "api.read"
          }
        },
        ...(backoff ? {} : { backoff: false as const })
      }))
  ).pipe(Layer.orDie)

const p9 = Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  yield* provider.setTokenFault(undefined)
  const contexts = {
    off: yield* Layer.build(managerWith(IdentityProvider.Clients.machineBasic, false)),
    on: yield* Layer.build(managerWith(IdentityProvider.Clients.machinePost, true))
  }
  const clientIds = {
    off: IdentityProvider.Clients.machineBasic.clientId,
    on: IdentityProvider.Clients.machinePost.clientId
  }
  const tokens = {
    off: Context.get(contexts.off, ClientCredentialsTokens.ClientCredentialsTokens),
    on: Context.get(contexts.on, ClientCredentialsTokens.ClientCredentialsTokens)
  }
  const held = { off: yield* tokens.off.get("bench"), on: yield* tokens.on.get("bench") }
  // into the renewal window (60 s before expiry) of the later of the two tokens: both stay valid ≥ 59 s more
  const latest = Math.max(held.off.expiresAt, held.on.expiresAt)
  shiftedClock.shift(latest - 59_000 - shiftedClock.clock.unsafeCurrentTimeMillis())

  const count = (which: "off" | "on") => provider.tokenRequests({ clientId: clientIds[which] })
  const before = { off: yield* count("off"), on: yield* count("on") }
  const stats: Record<"off" | "on", Stats> = {
    off: { calls: 0, errors: 0, errorsWhileValid: 0, expiredServed: 0, requests: 0, recoveryMillis: undefined },
    on: { calls: 0, errors: 0, errorsWhileValid: 0, expiredServed: 0, requests: 0, recoveryMillis: undefined }
  }
  yield* provider.setTokenFault({ _tag: "ServerError", status: 503 })
  const deadline = Date.now() + outageSeconds * 1000
  const caller = (which: "off" | "on", heldToken: AccessToken) =>
    Effect.gen(function*() {
      while (Date.now() < deadline) {
        const result = yield* Effect.either(tokens[which].get("bench"))
        const now = shiftedClock.clock.unsafeCurrentTimeMillis()
        const s = stats[which]
        s.calls++
        if (result._tag === "Left") {
          s.errors++
          if (now < heldToken.expiresAt) s.errorsWhileValid++
        } else if (now >= result.right.expiresAt) {
          s.expiredServed++
        }
        yield* Effect.sleep(pauseMillis)
      }
    })
  yield* Effect.all(
    [
      ...Array.from({ length: callers }, () => caller("off", held.off)),
      ...Array.from({ length: callers }, () => caller("on", held.on))
    ],
    { concurrency: "unbounded", discard: true }
  )
  stats.off.requests = (yield* count("off")) - before.off
  stats.on.requests = (yield* count("on")) - before.on

  // the provider is back: how long until each hands out a new token (the backed-off one waits for its window)
  yield* provider.setTokenFault(undefined)
  const recovered = Date.now()
  yield* Effect.all(
    (["off", "on"] as const).map((which) =>
      Effect.gen(function*() {
        while (Date.now() - recovered < 60_000) {
          const result = yield* Effect.either(tokens[which].get("bench"))
          if (
            result._tag === "Right" &&
            Redacted.value(result.right.accessToken) !== Redacted.value(held[which].accessToken)
          ) {
            stats[which].recoveryMillis = Date.now() - recovered
            return
          }
          yield* Effect.sleep(pauseMillis)
        }
      })
    ),
    { concurrency: "unbounded", discard: true }
  )

  const { off, on } = stats
  const recovery = (
    s: Stats
  ) => (s.recoveryMillis === undefined ? "none in 60 s" : `${(s.recoveryMillis / 1000).toFixed(1)} s`)
  return [
    {
      id: "P9",
      what: `provider outage of ${outageSeconds} s, ${callers} callers: requests reaching the provider`,
      value: `${on.requests} with backoff`,
      baseline: `${fmt(off.requests, 0)} without backoff`,
      ratio: on.requests / Math.max(1, off.requests),
      goal: "≤ 12 with backoff",
      met: on.requests <= 12,
      data: { outageSeconds, callers, pauseMillis, withBackoff: on, withoutBackoff: off }
    },
    {
      id: "P9",
      what: "caller errors while the held token is still valid",
      value: `${on.errorsWhileValid} with backoff (of ${fmt(on.calls, 0)} calls)`,
      baseline: `${off.errorsWhileValid} without backoff (of ${fmt(off.calls, 0)} calls)`,
      goal: "0; never an expired token",
      met: on.errorsWhileValid === 0 && off.errorsWhileValid === 0 && on.expiredServed === 0 &&
        off.expiredServed === 0,
      data: { recoveryWithBackoff: recovery(on), recoveryWithoutBackoff: recovery(off) }
    }
  ] satisfies ReadonlyArray<Row>
})

export const run = Effect.scoped(p9).pipe(Effect.withClock(shiftedClock.clock))
