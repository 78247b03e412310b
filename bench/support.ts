/** Shared helpers of the benchmarks: timing, statistics, and the results table. */
import { AccessToken, AccessTokenManagement } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

export interface Row {
  readonly id: string
  readonly what: string
  readonly value: string
  readonly baseline?: string | undefined
  readonly ratio?: number | undefined
  readonly goal?: string | undefined
  readonly met?: boolean | undefined
  readonly data: Record<string, unknown>
}

export const now = () => performance.now()

/** The benchmarks' client-credentials manager: one client, `bench`, the embedded provider's `machineBasic`. */
export const benchTokensLayer = Layer.unwrapEffect(
  Effect.map(IdentityProvider.IdentityProvider, (provider) =>
    AccessTokenManagement.layerClientCredentialsMemory({
      clients: {
        bench: {
          issuer: provider.issuer,
          clientId: IdentityProvider.Clients.machineBasic.clientId,
          clientSecret: Redacted.make(IdentityProvider.Clients.machineBasic.clientSecret),
          scope: "api.read"
        }
      }
    }))
).pipe(Layer.orDie)

/** What one request cost (ms): wall-clock time, and the process's CPU time (user + system). */
export interface Cost {
  readonly wall: number
  readonly cpu: number
}

/**
 * One GET, until its body is read: its wall-clock time and the process's CPU time over it (every thread: the
 * client, the in-process API, the garbage collector). On this shared machine the wall time also holds the waits
 * for a core, which follow the other processes' load; the CPU time holds only the work, and the paths compared do
 * the same I/O. Anything but a 200 is a defect, not a figure.
 */
/** The baseline of P1 and P1t: `http` with a fixed `Authorization` header carrying `token`. */
export const staticHeaderClient = (http: HttpClient.HttpClient, token: AccessToken.AccessToken) =>
  HttpClient.mapRequest(http, HttpClientRequest.setHeader("authorization", AccessToken.authorization(token)))

export const costOfGet = (client: HttpClient.HttpClient.With<unknown>, url: string) =>
  Effect.gen(function*() {
    const cpu = process.cpuUsage()
    const start = now()
    const response = yield* client.get(url)
    yield* response.arrayBuffer
    const wall = now() - start
    const used = process.cpuUsage(cpu)
    if (response.status !== 200) return yield* Effect.dieMessage(`status ${response.status}`)
    return { wall, cpu: (used.user + used.system) / 1000 } satisfies Cost
  }).pipe(Effect.scoped)

/** One GET, timed (ms) until its body is read; anything but a 200 is a defect, not a figure. */
export const timedGet = (client: HttpClient.HttpClient.With<unknown>, url: string) =>
  Effect.map(costOfGet(client, url), (cost) => cost.wall)

/** Median and mean of each measure of `costs` over the same of `baseline`, and the figures behind them. */
export const costRatios = (costs: ReadonlyArray<Cost>, baseline: ReadonlyArray<Cost>) => {
  const of = (measure: keyof Cost) => {
    const values = costs.map((cost) => cost[measure])
    const base = baseline.map((cost) => cost[measure])
    return {
      medianMs: median(values),
      meanMs: mean(values),
      baselineMedianMs: median(base),
      baselineMeanMs: mean(base),
      medianRatio: median(values) / median(base),
      meanRatio: mean(values) / mean(base)
    }
  }
  return { wall: of("wall"), cpu: of("cpu") }
}

/**
 * Times two paths after warming both up (JIT, connection pool, caches), in pairs whose order alternates, so that
 * drift in machine load hits both alike.
 */
export const interleavedPairs = <A, E, R>(
  a: Effect.Effect<A, E, R>,
  b: Effect.Effect<A, E, R>,
  options: { readonly warmup: number; readonly pairs: number }
) =>
  Effect.gen(function*() {
    for (let i = 0; i < options.warmup; i++) {
      yield* a
      yield* b
    }
    const aTimes: Array<A> = []
    const bTimes: Array<A> = []
    for (let pair = 0; pair < options.pairs; pair++) {
      if (pair % 2 === 0) {
        aTimes.push(yield* a)
        bTimes.push(yield* b)
      } else {
        bTimes.push(yield* b)
        aTimes.push(yield* a)
      }
    }
    return [aTimes, bTimes] as const
  })

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const mean = (values: ReadonlyArray<number>): number =>
  values.reduce((sum, value) => sum + value, 0) / values.length

export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/**
 * A full garbage collection, now: `gc` without `--expose-gc` on the command line (the flag set at run time takes
 * effect in a new context).
 */
let gc: (() => void) | undefined
export const collectGarbage = (): void => {
  if (gc === undefined) {
    setFlagsFromString("--expose-gc")
    gc = runInNewContext("gc") as () => void
  }
  gc()
}

/**
 * The wall-clock and CPU time (every thread's, the collector's included) of an effect, from a collected heap: a
 * full collection first, outside the measure, so that it does not pay for what ran before it.
 */
export const costOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    collectGarbage()
    const cpu = process.cpuUsage()
    const start = now()
    return Effect.map(effect, () => {
      const wall = now() - start
      const used = process.cpuUsage(cpu)
      return { wall, cpu: (used.user + used.system) / 1000 } satisfies Cost
    })
  })

/** Times an effect in milliseconds. */
export const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = now()
    const result = yield* effect
    return [now() - start, result] as const
  })

export const fmt = (n: number, digits = 2) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(digits)} M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(digits)

export const printTable = (rows: ReadonlyArray<Row>) => {
  const header = ["id", "what", "value", "baseline (same run)", "ratio", "goal", "met"]
  const lines = rows.map((r) => [
    r.id,
    r.what,
    r.value,
    r.baseline ?? "",
    r.ratio === undefined ? "" : r.ratio.toFixed(3),
    r.goal ?? "",
    r.met === undefined ? "" : r.met ? "yes" : "NO"
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  const render = (cells: ReadonlyArray<string>) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`
  console.log(render(header))
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`)
  for (const line of lines) console.log(render(line))
}

/** The real clock, moved forward on demand: to put tokens at expiry (or in their renewal window) without waiting. */
export const makeShiftedClock = () => {
  let offset = 0
  const base = Clock.make()
  const clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => base.unsafeCurrentTimeMillis() + offset,
    currentTimeMillis: Effect.sync(() => base.unsafeCurrentTimeMillis() + offset),
    unsafeCurrentTimeNanos: () => base.unsafeCurrentTimeNanos() + BigInt(offset) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => base.unsafeCurrentTimeNanos() + BigInt(offset) * 1_000_000n),
    sleep: (duration) => base.sleep(duration)
  }
  return {
    clock,
    shift: (millis: number) => {
      offset += millis
    }
  }
}
