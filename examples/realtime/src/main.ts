/**
 * Starts the realtime example on embedded defaults: `npm run realtime`; on two instances behind a round-robin
 * proxy, sharing Redis: `npm run realtime -- --instances 2`.
 *
 * Environment: `PORT` (default 3000; 0 picks a free port), `ACCESS_TOKEN_TTL` in seconds (default 20),
 * `PUSH_INTERVAL` (how often each websocket gets the API's answer, a duration such as `500 millis`; default
 * `2 seconds`), `DPOP` (`true` for DPoP-bound tokens; default false; one instance), `PRIVATE_KEY_JWT` (`true` for
 * private_key_jwt client authentication; default false; one instance), `REDIS_URL` with two instances (default
 * `redis://127.0.0.1:6379`).
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
  const accessTokenTtl = yield* Config.integer("ACCESS_TOKEN_TTL").pipe(Config.withDefault(20))
  const redisUrl = yield* Config.string("REDIS_URL").pipe(Config.withDefault("redis://127.0.0.1:6379"))
  const interval = yield* App.pushInterval
  const app = yield* Cluster.make({ port, accessTokenTtl, redisUrl, interval }).pipe(
    Effect.catchAll(() =>
      Effect.zipRight(
        Console.log(`Port ${port} is busy; using a free one.`),
        Cluster.make({ port: 0, accessTokenTtl, redisUrl, interval })
      )
    )
  )
  yield* Console.log(`
  Realtime example on two instances at ${app.url} (a round-robin proxy)
    instance A: ${app.instances[0]!.url}
    instance B: ${app.instances[1]!.url}
  sharing Redis at ${redisUrl} (keys under ${app.prefix}): sessions, tokens, the renewal lock and the bus.

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
