/**
 * Starts the realtime example on embedded defaults: `npx tsx examples/realtime/src/main.ts`.
 *
 * Environment: `PORT` (default 3000; 0 picks a free port), `ACCESS_TOKEN_TTL` in seconds (default 20), `DPOP`
 * (`true` for DPoP-bound tokens; default false).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as App from "./App.js"

const main = Effect.gen(function*() {
  const port = yield* Config.integer("PORT").pipe(Config.withDefault(3000))
  const accessTokenTtl = yield* Config.integer("ACCESS_TOKEN_TTL").pipe(Config.withDefault(20))
  const dpop = yield* Config.boolean("DPOP").pipe(Config.withDefault(false))
  const start = (port: number) => Layer.build(App.layer({ port, accessTokenTtl, dpop }))
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

NodeRuntime.runMain(Effect.scoped(main))
