/**
 * P1t, P2t: what `TokenMetrics.layer` costs on the hot path, measured beside the same path without it.
 *
 * P1t: a loopback GET to the demo API through the token-attaching client of a manager with metrics on, of one
 *      without, and with a static Authorization header, interleaved (the order rotates every round); ratios of the
 *      median and of the mean to the static header, of the process's CPU time per request (support.costOfGet) and
 *      of wall time (goals: metrics on ≤ 1.03, off ≤ 1.01, at p50 and mean).
 * P2t: cached token get (`yield*` in a loop), operations per second over 400 rounds of 5,000, metrics on beside off,
 *      alternating which goes first.
 */
import { AccessTokenHttpClient, ClientCredentialsTokens, TokenMetrics } from "@effect-atm/core"
import { DemoApi } from "@effect-atm/dev-identity"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  benchTokensLayer,
  type Cost,
  costOfGet,
  costRatios,
  fmt,
  type Row,
  staticHeaderClient,
  timed
} from "./support.js"

/** A manager of its own (its own cache), with or without metrics. */
const manager = (metered: boolean) =>
  Effect.map(
    Layer.build(metered ? benchTokensLayer.pipe(Layer.provide(TokenMetrics.layer)) : benchTokensLayer),
    Context.get(ClientCredentialsTokens.ClientCredentialsTokens)
  )

const p1t = Effect.gen(function*() {
  const api = yield* DemoApi.DemoApi
  const http = yield* HttpClient.HttpClient
  const off = yield* manager(false)
  const on = yield* manager(true)
  const client = (tokens: ClientCredentialsTokens.ClientCredentialsTokens["Type"]) =>
    AccessTokenHttpClient.withAccessToken(http, AccessTokenHttpClient.clientCredentialsSource(tokens, "bench"))
  const token = yield* on.get("bench")
  yield* off.get("bench")
  const fixed = staticHeaderClient(http, token)
  const clients = [client(on), client(off), fixed] as const
  const url = `${api.url}/data`
  const one = (c: HttpClient.HttpClient.With<unknown>) => costOfGet(c, url)
  for (let i = 0; i < 300; i++) for (const c of clients) yield* one(c)
  const costs: [Array<Cost>, Array<Cost>, Array<Cost>] = [[], [], []]
  // rounds of one request each, the order rotating, so that drift in machine load hits all three alike
  for (let round = 0; round < 3000; round++) {
    for (let k = 0; k < 3; k++) {
      const which = (round + k) % 3
      costs[which]!.push(yield* one(clients[which]!))
    }
  }
  const [onCosts, offCosts, fixedCosts] = costs
  const withMetrics = costRatios(onCosts, fixedCosts)
  const without = costRatios(offCosts, fixedCosts)
  return {
    id: "P1t",
    what: "GET via token-attaching client, TokenMetrics on (CPU time per request: median; mean)",
    value: `${(withMetrics.cpu.medianMs * 1000).toFixed(0)} µs; ${(withMetrics.cpu.meanMs * 1000).toFixed(0)} µs`,
    baseline: `${(withMetrics.cpu.baselineMedianMs * 1000).toFixed(0)} µs static; mean ratio ${
      withMetrics.cpu.meanRatio.toFixed(3)
    }; off ${without.cpu.medianRatio.toFixed(3)} (mean ${without.cpu.meanRatio.toFixed(3)}); wall on ${
      withMetrics.wall.medianRatio.toFixed(3)
    }, off ${without.wall.medianRatio.toFixed(3)}`,
    ratio: withMetrics.cpu.medianRatio,
    goal: "on ≤ 1.03, off ≤ 1.01 (p50 and mean)",
    met: Math.max(withMetrics.cpu.medianRatio, withMetrics.cpu.meanRatio) <= 1.03 &&
      Math.max(without.cpu.medianRatio, without.cpu.meanRatio) <= 1.01,
    data: { on: withMetrics, off: without, samples: onCosts.length }
  } satisfies Row
})

const p2t = Effect.gen(function*() {
  const off = yield* manager(false)
  const on = yield* manager(true)
  const n = 5_000
  const loop = (tokens: ClientCredentialsTokens.ClientCredentialsTokens["Type"]) => {
    const get = tokens.get("bench")
    return Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* get
    })
  }
  // a long warm-up of both (the first token, then the JIT): a shorter one measures the compiler, not the path
  for (let round = 0; round < 200; round++) {
    yield* loop(on)
    yield* loop(off)
  }
  const onMs: Array<number> = []
  const offMs: Array<number> = []
  // short rounds, alternating which goes first: drift in machine load and garbage hit both alike
  for (let round = 0; round < 400; round++) {
    if (round % 2 === 0) {
      onMs.push((yield* timed(loop(on)))[0])
      offMs.push((yield* timed(loop(off)))[0])
    } else {
      offMs.push((yield* timed(loop(off)))[0])
      onMs.push((yield* timed(loop(on)))[0])
    }
  }
  const sum = (values: ReadonlyArray<number>) => values.reduce((total, value) => total + value, 0)
  const onOps = n * onMs.length / (sum(onMs) / 1000)
  const offOps = n * offMs.length / (sum(offMs) / 1000)
  return {
    id: "P2t",
    what: "cached client-credentials token get, TokenMetrics on",
    value: `${fmt(onOps)} ops/s`,
    baseline: `${fmt(offOps)} ops/s metrics off`,
    ratio: onOps / offOps,
    data: { onOpsPerSecond: onOps, offOpsPerSecond: offOps }
  } satisfies Row
})

export const run = Effect.all([p1t, p2t]).pipe(Effect.scoped)
