/**
 * The realtime example switched to DPoP and private_key_jwt by configuration alone (`DPOP=true
 * PRIVATE_KEY_JWT=true`, read by `App.config` as `main.ts` reads it), driven without a browser: sign-in through
 * the app's routes, then its websocket with the session cookie.
 */
import { IdentityProvider } from "@effect-atm/dev-identity"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { WebSocket } from "undici"
import { appSessionCookie } from "../../../test/support/login.js"
import * as App from "../src/App.js"

interface Update {
  readonly type: "update"
  readonly api: {
    readonly sub: string
    readonly client_id: string
    readonly jti: string
    readonly cnf?: { jkt?: string }
  }
  readonly token: { readonly refreshes: number }
}

const signIn = (app: App.RealtimeApp["Type"], account: string) => appSessionCookie(app.url, app.provider, account)

/** The session's websocket: its updates until `until` holds for one of them (an error message fails). */
const updatesUntil = (app: App.RealtimeApp["Type"], cookie: string, until: (update: Update) => boolean) =>
  Effect.async<ReadonlyArray<Update>, Error>((resume) => {
    const updates: Array<Update> = []
    const socket = new WebSocket(`${app.url.replace("http", "ws")}/ws`, { headers: { cookie, origin: app.url } })
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data))
      if (message.type !== "update") {
        socket.close()
        return resume(Effect.fail(new Error(`the app pushed ${event.data}`)))
      }
      updates.push(message)
      if (until(message)) {
        socket.close()
        resume(Effect.succeed(updates))
      }
    })
    socket.addEventListener("error", () => resume(Effect.fail(new Error("the websocket failed"))))
    return Effect.sync(() => socket.close())
  })

describe("realtime example: DPOP=true PRIVATE_KEY_JWT=true", () => {
  it.scopedLive(
    "sign-in and refresh authenticate with client assertions and prove the session's key; the API sees DPoP-bound tokens",
    () =>
      Effect.gen(function*() {
        // short tokens and frequent pushes only make the test quick
        const env = { DPOP: "true", PRIVATE_KEY_JWT: "true", ACCESS_TOKEN_TTL: "4", PUSH_INTERVAL: "200 millis" }
        const context = yield* Layer.build(Layer.unwrapEffect(Effect.map(App.config, App.layer))).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
        const app = Context.get(context, App.RealtimeApp)
        const { webPrivateKeyJwt } = IdentityProvider.Clients

        // 4 s tokens are refreshed at half their lifetime: run until the server has refreshed alice's once
        const alice = yield* updatesUntil(app, yield* signIn(app, "alice"), (update) => update.token.refreshes >= 1)
        const keys = new Set(alice.map((update) => update.api.cnf?.jkt))
        for (const update of alice) {
          assert.strictEqual(update.api.sub, "alice")
          assert.strictEqual(update.api.client_id, webPrivateKeyJwt.clientId)
          // the demo API verified a proof of this key on the call (it refuses a DPoP-bound token without one)
          assert.isString(update.api.cnf?.jkt)
        }
        assert.strictEqual(keys.size, 1, "the session's key, kept across the refresh")
        assert.isAbove(new Set(alice.map((update) => update.api.jti)).size, 1, "a refreshed token was used")

        // another session proves a key of its own
        const bob = yield* updatesUntil(app, yield* signIn(app, "bob"), () => true)
        assert.strictEqual(bob[0]!.api.sub, "bob")
        assert.isFalse(keys.has(bob[0]!.api.cnf?.jkt), "one key per session")

        // every token request (code exchanges, refreshes) carried a client assertion and a DPoP proof
        const requests = (filter: Parameters<typeof app.provider.tokenRequests>[0]) =>
          app.provider.tokenRequests({ clientId: webPrivateKeyJwt.clientId, ...filter })
        const total = yield* requests({})
        assert.strictEqual(yield* app.provider.tokenRequests(), total, "no other client asked for tokens")
        assert.strictEqual(yield* requests({ grantType: "authorization_code", clientAssertion: true, dpop: true }), 2)
        assert.isAtLeast(yield* requests({ grantType: "refresh_token", clientAssertion: true, dpop: true }), 1)
        assert.strictEqual(yield* requests({ clientAssertion: true, dpop: true }), total)
      }),
    { timeout: 60_000 }
  )
})
