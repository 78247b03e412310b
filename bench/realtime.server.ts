/**
 * P14's server, in a child process of its own (`node --expose-gc --import tsx`), so that its memory is the
 * server's and not the load generator's: the realtime example on two instances behind its round-robin proxy,
 * sharing Redis (`Cluster.make`, what `npm run realtime -- --instances 2` runs), with the embedded provider and demo
 * API in the same process. Talks to the parent over IPC: signs users in on request (through the example's own login
 * routes), reports its memory every 250 ms, answers probes (the provider's token requests, the heap after a full
 * collection) and stops on request.
 *
 * Environment: `P14_PREFIX` (Redis keys; the parent deletes them), `P14_TTL` (access token lifetime, seconds),
 * `P14_INTERVAL_MS` (push interval).
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import * as Cluster from "../examples/realtime/src/Cluster.js"
import { appSessionCookie } from "../test/support/login.js"

/** From the parent; each request is answered with a `Reply` of the same `id`. */
export type Request =
  | { readonly id: number; readonly type: "signIn"; readonly accounts: ReadonlyArray<string> }
  | { readonly id: number; readonly type: "probe" }
  | { readonly id: number; readonly type: "stop" }

export interface Probe {
  readonly refreshGrants: number
  readonly codeGrants: number
  readonly tokenRequests: number
  /** `heapUsed` after full collections, bytes */
  readonly heapAfterGc: number
  readonly rss: number
}

/** To the parent. */
export type Message =
  | { readonly type: "ready"; readonly url: string }
  | { readonly type: "memory"; readonly at: number; readonly rss: number; readonly heapUsed: number }
  | { readonly type: "reply"; readonly id: number; readonly cookies?: ReadonlyArray<string>; readonly probe?: Probe }

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with --expose-gc")

const send = (message: Message) => process.send?.(message)
// the parent gone: nobody will ask us to stop
process.on("disconnect", () => process.exit(1))

const main = Effect.gen(function*() {
  const app = yield* Cluster.make({
    prefix: process.env.P14_PREFIX!,
    accessTokenTtl: Number(process.env.P14_TTL ?? 20),
    interval: Duration.millis(Number(process.env.P14_INTERVAL_MS ?? 500))
  })
  const runtime = yield* Effect.runtime<never>()
  const stopped = yield* Deferred.make<void>()

  const probe = Effect.gen(function*() {
    for (let i = 0; i < 4; i++) gc()
    const memory = process.memoryUsage()
    return {
      refreshGrants: yield* app.provider.tokenRequests({ grantType: "refresh_token" }),
      codeGrants: yield* app.provider.tokenRequests({ grantType: "authorization_code" }),
      tokenRequests: yield* app.provider.tokenRequests(),
      heapAfterGc: memory.heapUsed,
      rss: memory.rss
    } satisfies Probe
  })

  const handle = (request: Request): Effect.Effect<void> => {
    switch (request.type) {
      case "signIn":
        return Effect.forEach(request.accounts, (account) => appSessionCookie(app.url, app.provider, account), {
          concurrency: 8
        }).pipe(
          Effect.flatMap((cookies) => Effect.sync(() => send({ type: "reply", id: request.id, cookies }))),
          Effect.orDie
        )
      case "probe":
        return Effect.flatMap(probe, (probe) => Effect.sync(() => send({ type: "reply", id: request.id, probe })))
      case "stop":
        return Effect.zipRight(
          Effect.sync(() => send({ type: "reply", id: request.id })),
          Deferred.succeed(stopped, undefined)
        )
    }
  }
  process.on("message", (request: Request) => Runtime.runFork(runtime)(handle(request)))

  const sampler = setInterval(() => {
    const memory = process.memoryUsage()
    send({ type: "memory", at: Date.now(), rss: memory.rss, heapUsed: memory.heapUsed })
  }, 250)
  yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(sampler)))
  send({ type: "ready", url: app.url })
  yield* Deferred.await(stopped)
})

Effect.runPromise(Effect.scoped(main)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
