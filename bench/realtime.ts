/**
 * P14 — the realtime example under load (issue 11): `P14_SESSIONS` signed-in sessions (default 100) × 5 websocket
 * connections each (tabs of one session: browser-less clients with the session cookie), through the example's
 * round-robin proxy onto its two instances sharing Redis, every connection pushed the user's live data every
 * 0.5 s for `P14_SECONDS` (default 60) with 20 s access tokens.
 *
 * The server (proxy, both instances, the embedded provider and demo API: what `npm run realtime -- --instances 2`
 * runs) is a child process (`realtime.server.ts`), so that the memory it reports is the server's alone; the
 * clients are this process. Measured:
 * - leaks: every push carries what the demo API saw in the token it was fetched with (`api.sub`, `api.jti`); a
 *   push whose subject is not its session's user, or a token id seen by two sessions, is a leak (goal 0);
 * - refreshes: `refresh_token` grants counted at the provider over the load window, against one per session per
 *   renewal period (the manager renews at half a 20 s token's lifetime: every 10 s), not one per connection: at
 *   most ⌊window / period⌋ + 1 per session;
 * - server memory: RSS and heap sampled every 250 ms (peaks), and the heap after full collections once the
 *   connections are open and again at the end of the window: bounded when the end's is within 20% (+ 4 MB) of
 *   the start's (the heap's lowest sample in the first and last third of the window is in the JSON);
 * - push latency: the server's timestamp in the push (taken once the API answered, before the write) against the
 *   client's receipt (same host clock): delivery through the instance, the proxy and the client's event loop; and
 *   the gap between two pushes of one connection (0.5 s + the API call with the user's token + scheduling).
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import { WebSocket } from "undici"
import { deleteRedisKeysAfter, runId } from "../test/support/stores.js"
import type { Message, Probe, Request } from "./realtime.server.js"
import { fmt, percentile, type Row } from "./support.js"

const seconds = Number(process.env.P14_SECONDS ?? 60)
const sessions = Number(process.env.P14_SESSIONS ?? 100)
const tabs = 5
const accessTokenTtl = 20
const intervalMs = 500
/** The manager renews a user token `renewBefore` (60 s) ahead of expiry, capped at half the token's lifetime. */
const renewalPeriod = accessTokenTtl - Math.min(60, accessTokenTtl / 2)

interface MemorySample {
  readonly at: number
  readonly rss: number
  readonly heapUsed: number
}

type RequestBody = Request extends infer R ? R extends Request ? Omit<R, "id"> : never : never
type Reply = Extract<Message, { type: "reply" }>

const serverScript = fileURLToPath(new URL("./realtime.server.ts", import.meta.url))

/** The server child, stopped (and killed if it does not stop) when the scope closes. */
const startServer = (prefix: string) =>
  Effect.acquireRelease(
    Effect.async<
      {
        readonly url: string
        readonly request: (body: RequestBody) => Promise<Reply>
        readonly samples: ReadonlyArray<MemorySample>
        readonly stop: () => Promise<void>
      },
      Error
    >((resume) => {
      const child = fork(serverScript, [], {
        execArgv: ["--expose-gc", "--import", "tsx"],
        env: { ...process.env, P14_PREFIX: prefix, P14_TTL: `${accessTokenTtl}`, P14_INTERVAL_MS: `${intervalMs}` },
        stdio: ["ignore", "inherit", "inherit", "ipc"]
      })
      const samples: Array<MemorySample> = []
      const pending = new Map<number, (reply: Reply) => void>()
      let ids = 0
      let ready = false
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      child.on("message", (message: Message) => {
        switch (message.type) {
          case "ready":
            ready = true
            return resume(Effect.succeed({
              url: message.url,
              samples,
              request: (body) =>
                new Promise<Reply>((resolve) => {
                  const id = ids++
                  pending.set(id, resolve)
                  child.send({ ...body, id })
                }),
              stop: async () => {
                const id = ids++
                child.send({ type: "stop", id })
                const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
                await exited
                clearTimeout(timer)
              }
            }))
          case "memory":
            samples.push(message)
            return
          case "reply":
            pending.get(message.id)?.(message)
            pending.delete(message.id)
            return
        }
      })
      child.once("exit", (code, signal) => {
        if (!ready) resume(Effect.fail(new Error(`the P14 server exited (${signal ?? code}) before it was ready`)))
      })
      return Effect.sync(() => child.kill("SIGKILL"))
    }),
    (server) => Effect.promise(() => server.stop())
  )

/** One session's tab: a websocket with the session cookie, open (or `undefined` if refused). */
const connect = (url: string, cookie: string) =>
  new Promise<WebSocket | undefined>((resolve) => {
    const socket = new WebSocket(`${url.replace("http", "ws")}/ws`, { headers: { cookie, origin: url } })
    socket.addEventListener("open", () => resolve(socket), { once: true })
    socket.addEventListener("error", () => resolve(undefined), { once: true })
  })

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`
const max = (values: ReadonlyArray<number>) => values.reduce((a, b) => Math.max(a, b), 0)
const min = (values: ReadonlyArray<number>) => values.reduce((a, b) => Math.min(a, b), Infinity)

interface Update {
  readonly type: "update" | "error" | "signed-out"
  readonly at: number
  readonly instance?: string
  readonly api: { readonly sub: string; readonly jti: string }
  readonly message?: string
}

/** Counts by text, for the report: what the server said when it could not push. */
const tally = (counts: Record<string, number>, text: string) => {
  counts[text] = (counts[text] ?? 0) + 1
}

export const run = Effect.gen(function*() {
  const prefix = `bench:${runId()}:p14:`
  // built first: its finalizer (the Redis keys) runs after the server has stopped
  yield* Layer.build(deleteRedisKeysAfter(prefix))
  console.error(`  P14: ${sessions} sessions × ${tabs} connections, ${seconds} s…`)
  const server = yield* startServer(prefix)

  const accounts = Array.from({ length: sessions }, (_, i) => `p14-user-${i}`)
  const signInStart = Date.now()
  const { cookies } = yield* Effect.promise(() => server.request({ type: "signIn", accounts }))
  const signInSeconds = (Date.now() - signInStart) / 1000
  console.error(`  P14: ${sessions} sessions signed in in ${signInSeconds.toFixed(1)} s`)
  const before: Probe = (yield* Effect.promise(() => server.request({ type: "probe" }))).probe!

  const stats = {
    pushes: 0,
    leaks: 0,
    errors: 0,
    signedOut: 0,
    earlyCloses: 0,
    latencies: [] as Array<number>,
    gaps: [] as Array<number>,
    byInstance: {} as Record<string, number>,
    errorMessages: {} as Record<string, number>,
    signedOutMessages: {} as Record<string, number>,
    closeCodes: {} as Record<string, number>
  }
  const tokensOf = accounts.map(() => new Set<string>())
  const sessionOfToken = new Map<string, number>()
  const instancesOf = accounts.map(() => new Set<string>())
  let recording = false
  let closing = false

  const sockets = yield* Effect.promise(() =>
    Promise.all(accounts.flatMap((account, session) =>
      Array.from({ length: tabs }, async () => {
        const socket = await connect(server.url, cookies![session]!)
        if (socket === undefined) return undefined
        let last: number | undefined
        socket.addEventListener("message", (event) => {
          const received = Date.now()
          const message = JSON.parse(String(event.data)) as Update
          if (message.type === "error") {
            stats.errors++
            return tally(stats.errorMessages, message.message ?? "")
          }
          if (message.type === "signed-out") {
            stats.signedOut++
            // by reason, not by user
            return tally(stats.signedOutMessages, (message.message ?? "").replace(account, "…"))
          }
          // never another user's data, whatever the window
          const owner = sessionOfToken.get(message.api.jti)
          if (message.api.sub !== account || (owner !== undefined && owner !== session)) stats.leaks++
          sessionOfToken.set(message.api.jti, session)
          tokensOf[session]!.add(message.api.jti)
          if (message.instance !== undefined) instancesOf[session]!.add(message.instance)
          if (recording) {
            stats.pushes++
            stats.latencies.push(received - message.at)
            if (last !== undefined) stats.gaps.push(received - last)
            if (message.instance !== undefined) {
              stats.byInstance[message.instance] = (stats.byInstance[message.instance] ?? 0) + 1
            }
          }
          last = received
        })
        socket.addEventListener("close", (event) => {
          if (closing) return
          stats.earlyCloses++
          tally(stats.closeCodes, `${event.code} ${event.reason}`)
        })
        return socket
      })
    ))
  )
  const open = sockets.filter((socket) => socket !== undefined)
  const connectSeconds = (Date.now() - signInStart) / 1000 - signInSeconds
  console.error(`  P14: ${open.length} connections open in ${connectSeconds.toFixed(1)} s`)

  // the load window
  const start: Probe = (yield* Effect.promise(() => server.request({ type: "probe" }))).probe!
  const windowStart = Date.now()
  recording = true
  yield* Effect.sleep(`${seconds} seconds`)
  recording = false
  const windowEnd = Date.now()
  const end: Probe = (yield* Effect.promise(() => server.request({ type: "probe" }))).probe!
  closing = true
  for (const socket of open) socket.close()
  yield* Effect.sleep("2 seconds")
  const after: Probe = (yield* Effect.promise(() => server.request({ type: "probe" }))).probe!

  const windowSeconds = (windowEnd - windowStart) / 1000
  const refreshes = end.refreshGrants - start.refreshGrants
  const expected = sessions * windowSeconds / renewalPeriod
  // a session whose renewals straddle both ends of the window has one more in it
  const ceiling = sessions * (Math.floor(windowSeconds / renewalPeriod) + 1)
  const loadSamples = server.samples.filter((s) => s.at >= windowStart && s.at <= windowEnd)
  const third = (windowEnd - windowStart) / 3
  const firstFloor = min(loadSamples.filter((s) => s.at < windowStart + third).map((s) => s.heapUsed))
  const lastFloor = min(loadSamples.filter((s) => s.at > windowEnd - third).map((s) => s.heapUsed))
  const bounded = end.heapAfterGc <= start.heapAfterGc * 1.2 + 4e6
  const peakRss = max(loadSamples.map((s) => s.rss))
  const peakHeap = max(loadSamples.map((s) => s.heapUsed))
  const tokensPerSession = tokensOf.map((set) => set.size)
  const load = `${sessions} sessions × ${tabs} connections, ${windowSeconds.toFixed(0)} s`

  const data = {
    sessions,
    tabs,
    seconds: windowSeconds,
    accessTokenTtl,
    intervalMs,
    renewalPeriod,
    signInSeconds,
    connectSeconds,
    connections: open.length,
    sessionsOnBothInstances: instancesOf.filter((set) => set.size === 2).length,
    pushes: stats.pushes,
    pushesByInstance: stats.byInstance,
    pushesPerConnectionPerSecond: stats.pushes / open.length / windowSeconds,
    leaks: stats.leaks,
    errors: stats.errors,
    signedOut: stats.signedOut,
    earlyCloses: stats.earlyCloses,
    errorMessages: stats.errorMessages,
    signedOutMessages: stats.signedOutMessages,
    closeCodes: stats.closeCodes,
    refreshGrants: refreshes,
    expectedRefreshGrants: expected,
    codeGrants: end.codeGrants,
    tokenRequests: end.tokenRequests,
    accessTokensSeenPerSession: { min: min(tokensPerSession), max: max(tokensPerSession) },
    latencyMs: {
      p50: percentile(stats.latencies, 50),
      p99: percentile(stats.latencies, 99),
      max: max(stats.latencies)
    },
    gapMs: { p50: percentile(stats.gaps, 50), p99: percentile(stats.gaps, 99), max: max(stats.gaps) },
    memory: {
      beforeSignIn: server.samples[0],
      afterSignIn: before,
      loadStart: start,
      peakRss,
      peakHeapUsed: peakHeap,
      heapFloorFirstThird: firstFloor,
      heapFloorLastThird: lastFloor,
      loadEnd: end,
      afterClose: after
    }
  }

  return [
    {
      id: "P14",
      what: `realtime, 2 instances: cross-user leaks (${load})`,
      value: `${stats.leaks} in ${fmt(stats.pushes, 0)} pushes`,
      baseline: `${open.length}/${sessions * tabs} connections, ${data.sessionsOnBothInstances} sessions on both ` +
        `instances; ${stats.errors} errors, ${stats.signedOut} signed out, ${stats.earlyCloses} early closes`,
      goal: "0 leaks",
      met: stats.leaks === 0,
      data
    },
    {
      id: "P14r",
      what: `realtime: refresh_token grants at the provider over the window (20 s tokens, renewal every ` +
        `${renewalPeriod} s)`,
      value: `${refreshes} (${(refreshes / sessions).toFixed(1)}/session)`,
      baseline: `${expected.toFixed(0)} = one per session per renewal period (per connection: ${
        (expected * tabs).toFixed(0)
      })`,
      ratio: refreshes / expected,
      goal: `≤ ${ceiling} (one per session per period, window edges included)`,
      met: refreshes <= ceiling,
      data: { refreshGrants: refreshes, expectedRefreshGrants: expected, ...data.accessTokensSeenPerSession }
    },
    {
      id: "P14m",
      what: "realtime: server process memory (proxy, provider, demo API, instances A and B)",
      value: `RSS ${mb(start.rss)} → peak ${mb(peakRss)} → ${mb(end.rss)}; heap after GC ` +
        `${mb(start.heapAfterGc)} → ${mb(end.heapAfterGc)} (${mb(after.heapAfterGc)} closed)`,
      baseline: `heap floor (lowest sample) first third ${mb(firstFloor)}, last third ${mb(lastFloor)}`,
      ratio: end.heapAfterGc / start.heapAfterGc,
      goal: "bounded: heap after GC at the end ≤ 1.2× at the start + 4 MB",
      met: bounded,
      data: data.memory
    },
    {
      id: "P14l",
      what: "realtime: push latency, server timestamp → client receipt (p50 / p99)",
      value: `${data.latencyMs.p50} / ${data.latencyMs.p99} ms`,
      baseline: `gap between pushes p50 / p99 ${data.gapMs.p50} / ${data.gapMs.p99} ms (interval ${intervalMs} ms); ` +
        `${data.pushesPerConnectionPerSecond.toFixed(2)} pushes/s per connection`,
      goal: "reported",
      data: {
        latencyMs: data.latencyMs,
        gapMs: data.gapMs,
        pushesPerConnectionPerSecond: data.pushesPerConnectionPerSecond
      }
    }
  ] satisfies ReadonlyArray<Row> as ReadonlyArray<Row>
}).pipe(Effect.scoped)
