/**
 * One application instance for the cross-process tests, run by `tsx` in a child process: user tokens and
 * client-credentials tokens over the Redis store and its cluster-wide lock, with encryption from the environment
 * (`TOKEN_ENCRYPTION_KEY`). The parent sends `{ run: "user" | "client", calls }` and gets back what its callers saw.
 *
 * Environment: ISSUER, REDIS_URL, REDIS_PREFIX, REDIS_LEASE_TIME, SUBJECT, TOKEN_ENCRYPTION_KEY.
 */
import {
  type AccessToken,
  ClientCredentialsTokens,
  CurrentUser,
  TokenEncryption,
  TokenEndpoint,
  UserTokens
} from "@effect-atm/core"
import { RedisStore } from "@effect-atm/store-redis"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"

export interface Command {
  readonly run: "user" | "client"
  readonly calls: number
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
}

const env = (name: string) => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const issuer = env("ISSUER")
const user = new CurrentUser.User({ subject: env("SUBJECT") })

const StoreLive = RedisStore.layerConfig().pipe(Layer.provide(TokenEncryption.layerConfig()))

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
  Layer.provide(StoreLive),
  Layer.provide(FetchHttpClient.layer)
)

const runtime = ManagedRuntime.make(TokensLive)

const describe = (error: { readonly _tag: string }): string => {
  const detail = error as { error?: unknown; reason?: unknown; operation?: unknown }
  return [error._tag, detail.error ?? detail.reason ?? detail.operation].filter(Boolean).join(":")
}

const hash = (token: Redacted.Redacted<string>) =>
  Crypto.createHash("sha256").update(Redacted.value(token)).digest("hex").slice(0, 16)

const run = (command: Command) =>
  Effect.gen(function*() {
    const started = Date.now()
    const call: Effect.Effect<
      AccessToken.AccessToken,
      UserTokens.UserTokenError | ClientCredentialsTokens.ClientCredentialsTokenError,
      UserTokens.UserTokens | ClientCredentialsTokens.ClientCredentialsTokens
    > = command.run === "user"
      ? Effect.flatMap(UserTokens.UserTokens, (tokens) => tokens.getFor(user))
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
      millis: Date.now() - started
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
