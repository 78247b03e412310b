/**
 * P1t, P2t: what `TokenMetrics.layer` costs on the hot path, measured beside the same path without it.
 *
 * P1t: a loopback GET to the demo API through the token-attaching client of a manager with metrics on, of one
 *      without, and with a static Authorization header, interleaved (the order rotates every round); ratios of
 *      median and mean latencies to the static header (goal with metrics on: ≤ 1.03).
 * P2t: cached token get (`yield*` in a loop), operations per second over 400 rounds of 5,000, metrics on beside off,
 *      alternating which goes first.
 */
import { AccessToken, AccessTokenHttpClient, ClientCredentialsTokens, TokenMetrics } from "@effect-atm/core"
import { DemoApi } from "@effect-atm/dev-identity"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { benchTokensLayer, fmt, median, type Row, timed, timedGet } from "./support.js"

/** A manager of its own (its own cache), with or without metrics. */
const manager = (metered: boolean) =>
  Effect.map(
    Layer.build(metered ? benchTokensLayer.pipe(Layer.provide(TokenMetrics.layer)) : benchTokensLayer),
    Context.get(ClientCredentialsTokens.ClientCredentialsTokens)
  )

const mean = (values: ReadonlyArray<number>) => values.reduce((sum, value) => sum + value, 0) / values.length

const p1t = Effect.gen(function*() {
  const api = yield* DemoApi.DemoApi
  const http = yield* HttpClient.HttpClient
  const off = yield* manager(false)
  const on = yield* manager(true)
  const client = (tokens: ClientCredentialsTokens.ClientCredentialsTokens["Type"]) =>
    AccessTokenHttpClient.withAccessToken(http, AccessTokenHttpClient.clientCredentialsSource(tokens, "bench"))
  const token = yield* on.get("bench")
  yield* off.get("bench")
  const fixed = HttpClient.mapRequest(
    http,
    HttpClientRequest.setHeader("authorization", AccessToken.authorization(token))
  )
  const clients = [client(on), client(off), fixed] as const
  const url = `${api.url}/data`
  const one = (c: HttpClient.HttpClient.With<unknown>) => timedGet(c, url)
  for (let i = 0; i < 300; i++) for (const c of clients) yield* one(c)
  const times: [Array<number>, Array<number>, Array<number>] = [[], [], []]
  // rounds of one request each, the order rotating, so that drift in machine load hits all three alike
  for (let round = 0; round < 3000; round++) {
    for (let k = 0; k < 3; k++) {
      const which = (round + k) % 3
      times[which]!.push(yield* one(clients[which]!))
    }
  }
  const [onTimes, offTimes, fixedTimes] = times
  const ratio = median(onTimes) / median(fixedTimes)
  const meanRatio = mean(onTimes) / mean(fixedTimes)
  return {
    id: "P1t",
    what: "GET via token-attaching client, TokenMetrics on (median; mean)",
    value: `${(median(onTimes) * 1000).toFixed(0)} µs; ${(mean(onTimes) * 1000).toFixed(0)} µs`,
    baseline: `${(median(fixedTimes) * 1000).toFixed(0)} µs static; off ${
      (median(offTimes) / median(fixedTimes)).toFixed(3)
    } × (mean ${(mean(offTimes) / mean(fixedTimes)).toFixed(3)})`,
    ratio,
    goal: "ratio ≤ 1.03 (p50 and mean)",
    met: ratio <= 1.03 && meanRatio <= 1.03,
    data: {
      onMedianMs: median(onTimes),
      offMedianMs: median(offTimes),
      staticMedianMs: median(fixedTimes),
      onMeanMs: mean(onTimes),
      offMeanMs: mean(offTimes),
      staticMeanMs: mean(fixedTimes),
      medianRatioOn: ratio,
      meanRatioOn: meanRatio,
      medianRatioOff: median(offTimes) / median(fixedTimes),
      meanRatioOff: mean(offTimes) / mean(fixedTimes),
      samples: onTimes.length
    }
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
