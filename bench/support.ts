/** Shared helpers of the benchmarks: timing, statistics, and the results table. */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"

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

export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

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
