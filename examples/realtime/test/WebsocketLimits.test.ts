/**
 * The realtime example's websocket limits, enforced: a message over the size limit closes the connection (1009),
 * a session's connections beyond the cap are refused. A browser-less client with the session cookie.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { WebSocket } from "undici"
import { appSessionCookie } from "../../../test/support/login.js"
import * as App from "../src/App.js"

describe("realtime example: websocket limits", () => {
  it.scopedLive(
    "a message over the limit closes the connection; a session's connections are capped",
    () =>
      Effect.gen(function*() {
        const context = yield* Layer.build(
          App.layer({ websocket: { maxMessageBytes: 512, maxConnectionsPerSession: 2 } })
        )
        const app = Context.get(context, App.RealtimeApp)
        const cookie = yield* appSessionCookie(app.url, app.provider, "alice")
        const open = Effect.promise(() =>
          new Promise<WebSocket | undefined>((resolve) => {
            const socket = new WebSocket(`${app.url.replace("http", "ws")}/ws`, {
              headers: { cookie, origin: app.url }
            })
            socket.addEventListener("open", () => resolve(socket))
            socket.addEventListener("error", () => resolve(undefined))
          })
        )
        const first = (yield* open)!
        const second = (yield* open)!
        assert.isUndefined(yield* open, "a third connection of the session is refused")
        const closed = Effect.promise(() =>
          new Promise<number>((resolve) => second.addEventListener("close", (event) => resolve(event.code)))
        )
        second.send("x".repeat(513))
        assert.strictEqual(yield* closed, 1009)
        assert.strictEqual(first.readyState, WebSocket.OPEN)
        first.close()
      }),
    { timeout: 60_000 }
  )
})
