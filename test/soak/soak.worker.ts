/**
 * One application instance of the chaos soak, run by `tsx` in a child process: 50 users' tokens over the shared
 * store and lock (Redis or PostgreSQL), each call a request to the test's recording API through a token-attaching
 * client (with its 401 retry). It reports every caller's outcome and every token it handed out, and — before and
 * after each refresh request — which user's refresh token is at stake, so that the test can tell a grant lost to
 * a SIGKILL mid-refresh (the provider may have rotated a refresh token nobody stored) from a grant lost to a bug.
 *
 * Environment: ISSUER, API_URL, SOAK_USERS (comma-separated subjects), SOAK_STORE (JSON `SoakStore`),
 * TOKEN_ENCRYPTION_KEY.
 */
import {
  type AccessToken,
  AccessTokenHttpClient,
  CurrentUser,
  TokenEndpoint,
  TokenError,
  TokenLock,
  UserTokens,
  UserTokenStore
} from "@effect-atm/core"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import { type Call, type Command, type Handed, type Message, type SoakStore, soakStores } from "./stores.js"

const env = (name: string) => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const issuer = env("ISSUER")
const apiUrl = env("API_URL")
const users = env("SOAK_USERS").split(",").map((subject) => new CurrentUser.User({ subject }))
const store: SoakStore = JSON.parse(env("SOAK_STORE"))
const key = Redacted.make(env("TOKEN_ENCRYPTION_KEY"))

/** Written to the channel before it resolves: what the test must know even if this process dies right after. */
const tell = (message: Message) =>
  Effect.async<void>((resume) => {
    process.send!(message, undefined, {}, () => resume(Effect.void))
  })

const fingerprint = (secret: Redacted.Redacted<string>) =>
  Crypto.createHash("sha256").update(Redacted.value(secret)).digest("hex")

/** A refresh token's first hex digits of its digest, for the test's history of a user's refreshes. */
const short = (secret: Redacted.Redacted<string> | undefined) =>
  secret === undefined ? "" : fingerprint(secret).slice(0, 8)

/**
 * The store and the endpoint, watched: a read remembers whose refresh token it returned, a refresh request says
 * whose refresh token it spends, and the write after it says that the rotated one is safe.
 */
const watched = Effect.gen(function*() {
  const store = yield* UserTokenStore.UserTokenStore
  const endpoint = yield* TokenEndpoint.TokenEndpoint
  const owners = new Map<string, string>()
  const watchedStore: UserTokenStore.UserTokenStore["Type"] = {
    ...store,
    get: (user, params) =>
      Effect.tap(store.get(user, params), (found) =>
        Effect.sync(() => {
          const refreshToken = Option.getOrUndefined(found)?.refreshToken
          if (refreshToken !== undefined) owners.set(fingerprint(refreshToken), user)
        })),
    store: (user, token, params) =>
      store.store(user, token, params).pipe(
        Effect.onExit((exit) => {
          const at = Date.now()
          const rt = short(token.refreshToken)
          if (Exit.isSuccess(exit)) return tell({ t: "written", user, at, rt })
          const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
          // fenced: the lease was lost after the provider had rotated the refresh token, so its write is refused
          if (TokenLock.isLeaseLost(error)) return tell({ t: "unknown", user, at, reason: "lease lost", rt })
          return tell({ t: "storeFailed", user, at, reason: failure(exit.cause, error), rt })
        })
      ),
    clear: (user) =>
      Effect.tapErrorCause(
        store.clear(user),
        (cause) =>
          tell({
            t: "clearFailed",
            user,
            at: Date.now(),
            reason: failure(cause, Option.getOrUndefined(Cause.failureOption(cause))),
            rt: ""
          })
      )
  }
  const watchedEndpoint: TokenEndpoint.TokenEndpoint["Type"] = {
    ...endpoint,
    request: (client, grant) => {
      if (grant._tag !== "RefreshToken") return endpoint.request(client, grant)
      const user = owners.get(fingerprint(grant.refreshToken)) ?? "?"
      const rt = short(grant.refreshToken)
      return Effect.zipRight(
        tell({ t: "start", user, at: Date.now(), rt }),
        endpoint.request(client, grant).pipe(
          Effect.onExit((exit) => {
            const at = Date.now()
            // answered with tokens: the write that follows says whether they were kept
            if (Exit.isSuccess(exit)) return Effect.void
            if (Cause.isInterruptedOnly(exit.cause)) {
              // stopped in flight (its lease was lost, its caller gave up): the provider may have rotated anyway
              return tell({ t: "unknown", user, at, reason: "interrupted", rt })
            }
            const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
            // the provider answered (an OAuth error or a status): it rotated nothing for this request
            const answer = error?._tag === "TokenRequestRejected"
              ? describe(error)
              : error?._tag === "TokenEndpointUnavailable" && error.status !== undefined
              ? `${error._tag}:${error.status}`
              : undefined
            if (answer === undefined) return tell({ t: "unknown", user, at, reason: error?._tag ?? "defect", rt })
            // but if the renewal lease was lost while the request was in flight (a dropped session), another
            // instance may have taken over and presented the same refresh token meanwhile
            return Effect.flatMap(
              Effect.either(TokenLock.ensureHeld),
              (held) =>
                held._tag === "Left" && TokenLock.isLeaseLost(held.left)
                  ? tell({ t: "unknown", user, at, reason: "lease lost in flight", rt, answer })
                  : tell({ t: "answered", user, at, rt, reason: answer })
            )
          })
        )
      )
    }
  }
  return { store: watchedStore, endpoint: watchedEndpoint }
})

const TokensLive = Layer.scopedContext(Effect.gen(function*() {
  const { endpoint, store } = yield* watched
  const { tokens } = yield* UserTokens.make({
    client: { issuer, clientId: "web", clientSecret: Redacted.make("web-secret") },
    resource: "urn:effect-atm:demo-api",
    renewBefore: "2 seconds"
  }).pipe(
    Effect.provideService(UserTokenStore.UserTokenStore, store),
    Effect.provideService(TokenEndpoint.TokenEndpoint, endpoint)
  )
  return Context.make(UserTokens.UserTokens, tokens)
})).pipe(
  Layer.provideMerge(TokenEndpoint.layer({ timeout: "3 seconds" })),
  Layer.provide(soakStores(store, key)),
  Layer.provideMerge(FetchHttpClient.layer),
  Layer.orDie
)

const runtime = ManagedRuntime.make(TokensLive)

const claims = (token: AccessToken.AccessToken): { exp: number; sub: string } =>
  JSON.parse(Buffer.from(Redacted.value(token.accessToken).split(".")[1]!, "base64url").toString("utf8"))

/** Why a store operation failed, in a word or two. */
const failure = (cause: Cause.Cause<unknown>, error: unknown): string =>
  error !== undefined ? describe(error) : Cause.isInterruptedOnly(cause) ? "interrupted" : "defect"

const describe = (error: unknown): string => {
  if (!TokenError.isTokenError(error)) return (error as { _tag?: string })._tag ?? String(error)
  const detail = error as { error?: unknown; reason?: unknown; operation?: unknown }
  return [error._tag, detail.error ?? detail.reason ?? detail.operation].filter(Boolean).join(":")
}

const calls: Array<Call> = []

/** One caller: a token for `user`, and a request to the API with it (replaced once if the API answers 401). */
const call = (user: CurrentUser.User) =>
  Effect.gen(function*() {
    const tokens = yield* UserTokens.UserTokens
    const http = yield* HttpClient.HttpClient
    const handed: Array<Handed> = []
    const note = (askedAt: number) => (token: AccessToken.AccessToken) =>
      Effect.sync(() => {
        const { exp, sub } = claims(token)
        handed.push({ askedAt, at: Date.now(), expiresAt: token.expiresAt, exp, sub })
      })
    const source = AccessTokenHttpClient.currentUserSource(tokens)
    const client = AccessTokenHttpClient.withAccessToken(http, {
      get: Effect.suspend(() => Effect.tap(source.get, note(Date.now()))),
      renew: (rejected) => Effect.suspend(() => Effect.tap(source.renew(rejected), note(Date.now())))
    })
    const exit = yield* client.get(`${apiUrl}/users/${encodeURIComponent(user.subject)}`).pipe(
      Effect.flatMap((response) => Effect.as(Effect.orDie(response.text), response.status)),
      CurrentUser.provide(user),
      // no caller waits forever: past the lock timeout (30 s) and the endpoint's (3 s) it is a hang
      Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => ({ _tag: "Hang" as const }) }),
      Effect.exit
    )
    const outcome: Call = Exit.match(exit, {
      onSuccess: (status) => ({ subject: user.subject, outcome: "ok", status, handed }),
      onFailure: (cause) =>
        Option.match(Cause.failureOption(cause), {
          onNone: () => ({ subject: user.subject, outcome: "defect", detail: Cause.pretty(cause), handed }),
          onSome: (error) =>
            error._tag === "Hang"
              ? { subject: user.subject, outcome: "hang", handed }
              : { subject: user.subject, outcome: "typed", detail: describe(error), handed }
        })
    })
    calls.push(outcome)
  })

const go = (callsPerSecond: number) =>
  Effect.gen(function*() {
    const callers = yield* FiberSet.make()
    const flush = Effect.suspend(() => calls.length === 0 ? Effect.void : tell({ t: "calls", calls: calls.splice(0) }))
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep("500 millis"), flush)))
    const load = Effect.forever(Effect.gen(function*() {
      yield* FiberSet.run(callers, call(users[Math.floor(Math.random() * users.length)]!))
      yield* Effect.sleep(Math.round(1000 / callsPerSecond))
    }))
    yield* Effect.raceFirst(load, Deferred.await(stopSignal))
    // every caller already started gets its answer (or its hang) before the instance says it stopped
    yield* FiberSet.awaitEmpty(callers)
    yield* flush
    yield* tell({ t: "stopped" })
  }).pipe(Effect.scoped)

const stopSignal = Effect.runSync(Deferred.make<void>())

// build the layers (connect to the store, discover the provider) before saying ready
await runtime.runPromise(
  Effect.flatMap(
    TokenEndpoint.TokenEndpoint,
    (endpoint) => endpoint.metadata({ issuer, clientId: "web", authentication: "none", allowInsecureRequests: false })
  )
)
process.send!({ ready: process.pid })

process.on("message", (command: Command) => {
  if (command === "exit") {
    void runtime.dispose().finally(() => process.exit(0))
  } else if (command === "stop") {
    Effect.runFork(Deferred.succeed(stopSignal, undefined))
  } else {
    void runtime.runPromise(go(command.go.callsPerSecond))
  }
})
