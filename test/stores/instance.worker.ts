/**
 * One application instance for the cross-process tests, run by `tsx` in a child process: user tokens and
 * client-credentials tokens over the Redis store and its cluster-wide lock, with encryption from the environment
 * (`TOKEN_ENCRYPTION_KEY`). The parent sends `{ run: "user" | "client", calls }` and gets back what its callers saw.
 * A command may arm a stall: the whole process freezes (as in a long GC pause) the next time its renewal, holding
 * the lease, re-reads the store or writes to it.
 *
 * Environment: ISSUER, REDIS_URL, REDIS_PREFIX, REDIS_LEASE_TIME, SUBJECT, TOKEN_ENCRYPTION_KEY.
 */
import {
  type AccessToken,
  ClientCredentialsTokens,
  CurrentUser,
  TokenEncryption,
  TokenEndpoint,
  TokenLock,
  UserTokens,
  UserTokenStore
} from "@effect-atm/core"
import { RedisStore } from "@effect-atm/store-redis"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"

export interface Stall {
  /** Freeze when the renewal, under its lease, has re-read the store (before the provider) or writes the result. */
  readonly before: "refresh" | "write"
  /** Written (with the lease's fencing token) when the freeze starts. */
  readonly stalledFile: string
  /** The freeze lasts at least `atLeastMillis`, and until this file exists (at most 30 seconds). */
  readonly releaseFile: string
  readonly atLeastMillis: number
}

export interface Command {
  readonly run: "user" | "client"
  readonly calls: number
  readonly forceRenewal?: boolean | undefined
  readonly stall?: Stall | undefined
}

export interface Report {
  readonly pid: number
  readonly run: "user" | "client"
  readonly ok: number
  /** SHA-256 prefixes of the distinct access tokens the callers got */
  readonly tokens: ReadonlyArray<string>
  /** error tag (and OAuth error or reason) → count */
  readonly errors: Record<string, number>
  /** from the command to the last caller's answer */
  readonly millis: number
  /** when an armed stall froze the process, and when it went on (epoch milliseconds) */
  readonly stalled?: { readonly at: number; readonly until: number } | undefined
}

const env = (name: string) => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const issuer = env("ISSUER")
const user = new CurrentUser.User({ subject: env("SUBJECT") })

const StoreLive = RedisStore.layerConfig().pipe(Layer.provide(TokenEncryption.layerConfig()))

let armed: Stall | undefined
let stalled: { at: number; until: number } | undefined
const pause = new Int32Array(new SharedArrayBuffer(4))

/** Freezes the whole process (no timer, no I/O, no lease extension) while it holds a lease, if a stall is armed. */
const stallIfArmed = (where: Stall["before"]) =>
  Effect.flatMap(TokenLock.CurrentLease, (lease) =>
    Effect.sync(() => {
      const stall = armed
      if (stall === undefined || stall.before !== where || Option.isNone(lease)) return
      armed = undefined
      const at = Date.now()
      Fs.writeFileSync(stall.stalledFile, JSON.stringify({ fencingToken: lease.value.fencingToken, at }))
      while (Date.now() - at < 30_000 && (Date.now() - at < stall.atLeastMillis || !Fs.existsSync(stall.releaseFile))) {
        Atomics.wait(pause, 0, 0, 10)
      }
      stalled = { at, until: Date.now() }
    }))

const StallingStore = Layer.effect(
  UserTokenStore.UserTokenStore,
  Effect.map(UserTokenStore.UserTokenStore, (store) =>
    UserTokenStore.UserTokenStore.of({
      ...store,
      // after the re-read: the holder has the refresh token it would spend in hand when it freezes
      get: (user, params) => Effect.tap(store.get(user, params), () => stallIfArmed("refresh")),
      store: (user, token, params) => Effect.zipRight(stallIfArmed("write"), store.store(user, token, params))
    }))
)

const TokensLive = Layer.mergeAll(
  UserTokens.layer({
    client: { issuer, clientId: "web", clientSecret: Redacted.make("web-secret") },
    resource: "urn:effect-atm:demo-api",
    // renew at expiry, not before: the parent waits for the token to really expire
    renewBefore: "0 millis"
  }),
  ClientCredentialsTokens.layer({
    clients: {
      machine: {
        issuer,
        clientId: "machine-basic",
        clientSecret: Redacted.make("machine-basic-secret"),
        scope: "api.read"
      }
    }
  })
).pipe(
  Layer.provideMerge(TokenEndpoint.layer({ timeout: "10 seconds" })),
  Layer.provide(StallingStore),
  Layer.provide(StoreLive),
  Layer.provide(FetchHttpClient.layer)
)

const runtime = ManagedRuntime.make(TokensLive)

const describe = (error: { readonly _tag: string }): string => {
  const detail = error as { error?: unknown; reason?: unknown; operation?: unknown }
  // a lost lease is named as such: its reason varies
  if (detail.operation === "lease") return `${error._tag}:lease`
  return [error._tag, detail.error ?? detail.reason ?? detail.operation].filter(Boolean).join(":")
}

const hash = (token: Redacted.Redacted<string>) =>
  Crypto.createHash("sha256").update(Redacted.value(token)).digest("hex").slice(0, 16)

const run = (command: Command) =>
  Effect.gen(function*() {
    const started = Date.now()
    armed = command.stall
    stalled = undefined
    const call: Effect.Effect<
      AccessToken.AccessToken,
      UserTokens.UserTokenError | ClientCredentialsTokens.ClientCredentialsTokenError,
      UserTokens.UserTokens | ClientCredentialsTokens.ClientCredentialsTokens
    > = command.run === "user"
      ? Effect.flatMap(UserTokens.UserTokens, (tokens) => tokens.getFor(user, { forceRenewal: command.forceRenewal }))
      : Effect.flatMap(ClientCredentialsTokens.ClientCredentialsTokens, (tokens) => tokens.get("machine"))
    const results = yield* Effect.all(Array.from({ length: command.calls }, () => Effect.either(call)), {
      concurrency: "unbounded"
    })
    const tokens = new Set<string>()
    const errors: Record<string, number> = {}
    let ok = 0
    for (const result of results) {
      if (result._tag === "Right") {
        ok++
        tokens.add(hash(result.right.accessToken))
      } else {
        const key = describe(result.left)
        errors[key] = (errors[key] ?? 0) + 1
      }
    }
    const report: Report = {
      pid: process.pid,
      run: command.run,
      ok,
      tokens: [...tokens],
      errors,
      millis: Date.now() - started,
      stalled
    }
    return report
  })

// build the layers (connect to Redis, discover the provider) before saying ready
await runtime.runPromise(
  Effect.flatMap(
    TokenEndpoint.TokenEndpoint,
    (endpoint) => endpoint.metadata({ issuer, clientId: "web", authentication: "none", allowInsecureRequests: false })
  )
)
process.send!({ ready: process.pid })

process.on("message", (command: Command | "exit") => {
  if (command === "exit") {
    void runtime.dispose().finally(() => process.exit(0))
    return
  }
  void runtime.runPromise(run(command)).then(
    (report) => process.send!(report),
    (error) => process.send!({ pid: process.pid, run: command.run, crashed: String(error) })
  )
})
