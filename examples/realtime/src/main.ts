/**
 * Starts the realtime example on embedded defaults: `npm run realtime`; on two instances behind a round-robin
 * proxy, sharing Redis: `npm run realtime -- --instances 2`.
 *
 * Environment: `PORT` (default 3000; 0 picks a free port), `ACCESS_TOKEN_TTL` in seconds (default 20),
 * `PUSH_INTERVAL` (how often each websocket gets the API's answer, a duration such as `500 millis`; default
 * `2 seconds`), `DPOP` (`true` for DPoP-bound tokens; default false), `PRIVATE_KEY_JWT` (`true` for
 * private_key_jwt client authentication; default false), `WS_MAX_MESSAGE_BYTES` and `WS_MAX_CONNECTIONS_PER_SESSION`
 * (see `App.config`); with two instances, `REDIS_URL` (default `redis://127.0.0.1:6379`). All of them apply to one
 * instance and to two alike: with two and `DPOP=true`, the session's proof key is stored (encrypted) with its tokens
 * in Redis, so either instance refreshes them and calls the API.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as App from "./App.js"
import * as Cluster from "./Cluster.js"

const instancesFlag = process.argv.indexOf("--instances")
const instances = instancesFlag === -1 ? 1 : Number(process.argv[instancesFlag + 1])

const cluster = Effect.gen(function*() {
  const port = yield* Config.integer("PORT").pipe(Config.withDefault(3000))
  const redisUrl = yield* Config.string("REDIS_URL").pipe(Config.withDefault("redis://127.0.0.1:6379"))
  // the single instance's settings, on both: ACCESS_TOKEN_TTL, PUSH_INTERVAL, DPOP, PRIVATE_KEY_JWT, WS_…
  const options = yield* App.config
  const app = yield* Cluster.make({ ...options, port, redisUrl }).pipe(
    Effect.catchAll(() =>
      Effect.zipRight(
        Console.log(`Port ${port} is busy; using a free one.`),
        Cluster.make({ ...options, port: 0, redisUrl })
      )
    )
  )
  const modes = [
    options.dpop ? "DPoP-bound tokens (each session's proof key stored, encrypted, with its tokens)" : "",
    options.privateKeyJwt ? "private_key_jwt client authentication" : ""
  ].filter((mode) => mode !== "").map((mode) => `\n  Both instances: ${mode}.`).join("")
  yield* Console.log(`
  Realtime example on two instances at ${app.url} (a round-robin proxy)
    instance A: ${app.instances[0]!.url}
    instance B: ${app.instances[1]!.url}
  sharing Redis at ${redisUrl} (keys under ${app.prefix}): sessions, tokens, the renewal lock and the bus.${modes}

  Sign in, then open a second tab: each tab's live data comes from the instance named on the page. Sign out in
  one tab, and the other tab's connection ends at once, whichever instance it was on. Ctrl+C stops everything.
`)
  return yield* Effect.never
})

const main = Effect.gen(function*() {
  const port = yield* Config.integer("PORT").pipe(Config.withDefault(3000))
  // ACCESS_TOKEN_TTL, PUSH_INTERVAL, DPOP, PRIVATE_KEY_JWT, WS_MAX_MESSAGE_BYTES, WS_MAX_CONNECTIONS_PER_SESSION
  const options = yield* App.config
  const accessTokenTtl = options.accessTokenTtl ?? 20
  const start = (port: number) => Layer.build(App.layer({ ...options, port }))
  const context = yield* start(port).pipe(
    // a busy port should not stop a demo: take a free one instead
    Effect.catchTag(
      "ServeError",
      () => Effect.zipRight(Console.log(`Port ${port} is busy; using a free one.`), start(0))
    )
  )
  const app = yield* App.RealtimeApp.pipe(Effect.provide(context))
  yield* Console.log(`
  Realtime example running at ${app.url}

  Open it, click "Sign in", and sign in with any username and any non-empty password.
  Access tokens live ${accessTokenTtl} s at the embedded provider (${app.provider.issuer});
  watch the refresh count on the page go up. Ctrl+C stops everything.
`)
  return yield* Effect.never
})

if (instances !== 1 && instances !== 2) {
  console.error("--instances: 1 or 2")
  process.exit(2)
}
NodeRuntime.runMain(Effect.scoped(instances === 2 ? cluster : main))
