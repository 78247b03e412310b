/**
 * P6–P8: the durable and distributed stores (issue 5). Targets: Redis on 127.0.0.1:6379, PostgreSQL on
 * 127.0.0.1:5432 (database `test`, user postgres), a SQLite file in a temporary directory; every table, key prefix
 * and file is this run's own and is removed at the end.
 *
 * P6: 4 Node processes × 250 concurrent callers of the same user at expiry, over the Redis store and its renewal
 *     lock, against an embedded provider of its own (access tokens live 5 s, so that they really expire): refreshes
 *     at the provider (goal exactly 1) and time until all 1,000 callers have a token; then the same for
 *     client-credentials tokens over the Redis `AccessTokenStore` (goal 1 token request). 3 runs each.
 * P7: see `storesRoundTrips.ts`.
 * P8: heap per user of the in-memory `UserTokenStore` at 100,000 users (goal ≤ 2 KiB), and what it is: the token
 *     strings, the user key, the token objects around the strings, the store's own structure
 *     (`storesMemory.worker.ts`, in a child process with `--expose-gc`). A user as `UserTokens` stores one by
 *     default (access and refresh token); P8k beside it with the ID token (`keepIdToken: true`).
 */
import { CurrentUser, TokenEncryption, UserTokenStore } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { Report } from "../test/stores/instance.worker.js"
import { broadcast, instanceEnvironment, startInstances } from "../test/stores/instances.js"
import { signIn } from "../test/support/login.js"
import { redisUserTokensEnvironment, runId } from "../test/support/stores.js"
import type { MemoryReport } from "./storesMemory.worker.js"
import * as roundTrips from "./storesRoundTrips.js"
import { median, type Row, timed } from "./support.js"

// P6

const processes = 4
const calls = 250
const runs = 3
const accessTokenTtl = 5 // seconds: what redisUserTokensEnvironment gives the provider

interface RunFigures {
  /** requests at the provider: refreshes (user) or client-credentials token requests */
  readonly providerRequests: number
  /** from sending the command to the last process's answer (the parent's clock), ms */
  readonly settleMillis: number
  /** each process's own figure: from its command to its last caller's answer, ms */
  readonly processMillis: ReadonlyArray<number>
  readonly ok: number
  readonly distinctTokens: number
  readonly errors: Record<string, number>
}

const summarize = (reports: ReadonlyArray<Report>, providerRequests: number, settleMillis: number): RunFigures => {
  const errors: Record<string, number> = {}
  for (const report of reports) {
    const crashed = (report as { crashed?: string }).crashed
    if (crashed !== undefined) errors[`crashed: ${crashed}`] = (errors[`crashed: ${crashed}`] ?? 0) + calls
    for (const [error, count] of Object.entries(report.errors ?? {})) errors[error] = (errors[error] ?? 0) + count
  }
  return {
    providerRequests,
    settleMillis,
    processMillis: reports.map((report) => report.millis),
    ok: reports.reduce((sum, report) => sum + (report.ok ?? 0), 0),
    distinctTokens: new Set(reports.flatMap((report) => report.tokens ?? [])).size,
    errors
  }
}

const crossProcess = (prefix: string, key: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const store = yield* UserTokenStore.UserTokenStore
    const { user } = yield* signIn("bench-cross-process")
    const [startMillis, instances] = yield* timed(startInstances(
      processes,
      instanceEnvironment({ provider, subject: user.subject, prefix, key })
    ))
    const params = { resource: IdentityProvider.Resources.demoApi }
    const userRuns: Array<RunFigures> = []
    const clientRuns: Array<RunFigures> = []
    // the client-credentials token of the previous run expires by then (its entry in Redis with it)
    let clientExpiresBy = 0
    for (let run = 0; run < runs; run++) {
      // wait (on the real clock: the provider's and the processes') until both tokens have expired
      const stored = Option.getOrThrow(yield* store.get(CurrentUser.storeKey(user), params))
      const expiresAt = Math.max(stored.accessToken!.expiresAt, clientExpiresBy)
      yield* Effect.sleep(Math.max(0, expiresAt - Date.now() + 150))

      yield* provider.resetCounters
      const [userMillis, userReports] = yield* timed(broadcast(instances, { run: "user", calls }))
      userRuns.push(summarize(userReports, yield* provider.tokenRequests({ grantType: "refresh_token" }), userMillis))

      yield* provider.resetCounters
      const [clientMillis, clientReports] = yield* timed(broadcast(instances, { run: "client", calls }))
      clientExpiresBy = Date.now() + accessTokenTtl * 1000
      clientRuns.push(
        summarize(clientReports, yield* provider.tokenRequests({ grantType: "client_credentials" }), clientMillis)
      )
    }
    const row = (kind: "user" | "client", figures: ReadonlyArray<RunFigures>): Row => {
      const settle = figures.map((f) => f.settleMillis)
      const requests = figures.map((f) => f.providerRequests)
      const clean = figures.every((f) =>
        f.ok === processes * calls && f.distinctTokens === 1 && Object.keys(f.errors).length === 0
      )
      return {
        id: "P6",
        what: kind === "user"
          ? `${processes} processes × ${calls} callers, one user at expiry (Redis store + lock)`
          : `${processes} processes × ${calls} callers, client credentials (Redis AccessTokenStore)`,
        value: `${median(settle).toFixed(0)} ms to settle (median of ${figures.length})`,
        baseline: `${kind === "user" ? "refreshes" : "token requests"}: ${requests.join(", ")}; ` +
          `runs: ${settle.map((ms) => ms.toFixed(0)).join(", ")} ms`,
        goal: `exactly 1 ${kind === "user" ? "refresh" : "token request"} per run`,
        met: clean && requests.every((count) => count === 1),
        data: {
          kind,
          processes,
          callsPerProcess: calls,
          providerRequests: requests,
          settleMillis: settle,
          settleMillisMedian: median(settle),
          runs: figures,
          encryption: true,
          accessTokenTtlSeconds: accessTokenTtl,
          instancesStartMillis: startMillis
        }
      }
    }
    return [row("user", userRuns), row("client", clientRuns)]
  }).pipe(Effect.scoped, Effect.provide(redisUserTokensEnvironment(prefix, key)))

const p6 = Effect.suspend(() => crossProcess(`bench:${runId()}:xp:`, TokenEncryption.generateKey()))

// P8

const memoryWorker = fileURLToPath(new URL("./storesMemory.worker.ts", import.meta.url))

const runMemoryWorker = (keepIdToken: boolean) =>
  Effect.async<MemoryReport, Error>((resume) => {
    const child = fork(memoryWorker, [], {
      env: { ...process.env, KEEP_ID_TOKEN: String(keepIdToken) },
      execArgv: ["--expose-gc", "--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    let report: MemoryReport | undefined
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000)
    child.on("message", (message) => report = message as MemoryReport)
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      resume(
        report === undefined
          ? Effect.fail(new Error(`the memory worker exited (${signal ?? code}) without a report`))
          : Effect.succeed(report)
      )
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

/** P8: a user as `UserTokens` stores one by default (access and refresh token); P8k: with `keepIdToken: true`. */
const p8 = (keepIdToken: boolean) =>
  Effect.gen(function*() {
    const report = yield* runMemoryWorker(keepIdToken)
    const per = (bytes: number) => bytes / report.users
    const perUser = per(report.storeBytes)
    const b = (bytes: number) => `${per(bytes).toFixed(0)} B`
    return {
      id: keepIdToken ? "P8k" : "P8",
      what: `in-memory store, ${report.users.toLocaleString("en")} users (heap per user)${
        keepIdToken ? ", with their ID tokens (keepIdToken: true)" : ""
      }`,
      value: `${perUser.toFixed(0)} B/user, ${(report.storeBytes / 1e6).toFixed(1)} MB total`,
      baseline:
        `token strings ${b(report.rawTokenBytes)}${
          keepIdToken ? ` (ID token ${b(report.idTokenBytes)})` : ""
        }, user key ` +
        `${b(report.userKeyBytes)}, token objects ${b(report.tokenObjectBytes)}, store ${
          b(report.storeStructureBytes)
        }; ` +
        `${b(report.storeBytesAfterReads)} after a read each`,
      goal: keepIdToken ? "(shown beside P8)" : "≤ 2,048 B/user",
      met: keepIdToken ? undefined : perUser <= 2048,
      data: {
        ...report,
        bytesPerUser: perUser,
        rawTokenBytesPerUser: per(report.rawTokenBytes),
        idTokenBytesPerUser: per(report.idTokenBytes),
        userKeyBytesPerUser: per(report.userKeyBytes),
        // UserToken, AccessToken, a Redacted per secret (and its entry in Effect's registry), the token's numbers
        tokenObjectBytesPerUser: per(report.tokenObjectBytes),
        // what the store itself adds: its map, an entry per user and the entry's expiry
        storeStructureBytesPerUser: per(report.storeStructureBytes),
        bytesPerUserAfterReads: per(report.storeBytesAfterReads)
      }
    } satisfies Row
  })

export const run = Effect.gen(function*() {
  const rows: Array<Row> = []
  console.error("  P6 (cross-process)…")
  rows.push(...(yield* p6))
  console.error("  P7 (store round trips)…")
  rows.push(...(yield* roundTrips.run))
  console.error("  P8 (memory per user)…")
  rows.push(yield* p8(false), yield* p8(true))
  return rows as ReadonlyArray<Row>
})
