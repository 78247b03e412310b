/**
 * The realtime example on two instances sharing Redis, switched to DPoP and private_key_jwt by configuration alone
 * (`DPOP=true PRIVATE_KEY_JWT=true`, read by `App.config` as `main.ts` reads it for `--instances 2`), driven without
 * a browser or the proxy: the user signs in through instance A's own routes, and instance B — which never saw the
 * sign-in — calls the demo API with the tokens and the proof key A stored, then refreshes them. Each websocket
 * makes one call (the push interval is longer than the test) and access tokens outlive the test: a refresh
 * happens only when the test has the demo API refuse a token, so which instance calls and refreshes is causal.
 */
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import * as DPoP from "@effect-atm/core/DPoP"
import type * as UserToken from "@effect-atm/core/UserToken"
import * as IdentityProvider from "@effect-atm/dev-identity/IdentityProvider"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { WebSocket } from "undici"
import { appSessionCookie } from "../../../test/support/login.js"
import { deleteRedisKeysAfter, rawRedis, runId } from "../../../test/support/stores.js"
import * as App from "../src/App.js"
import * as Cluster from "../src/Cluster.js"

interface Update {
  readonly type: "update"
  readonly instance: string
  readonly api: {
    readonly sub: string
    readonly client_id: string
    readonly jti: string
    readonly cnf?: { readonly jkt?: string }
  }
}

const { webPrivateKeyJwt } = IdentityProvider.Clients
const resource = IdentityProvider.Resources.demoApi
const prefix = `test:${runId()}:realtime-dpop:`

/** The first message on a new websocket of `instance` (which must be an update); the socket is then closed. */
const firstUpdate = (instance: Cluster.Instance, origin: string, cookie: string) =>
  Effect.async<Update, Error>((resume) => {
    const socket = new WebSocket(`${instance.url.replace("http", "ws")}/ws`, { headers: { cookie, origin } })
    socket.addEventListener("message", (event) => {
      socket.close()
      const message = JSON.parse(String(event.data))
      resume(message.type === "update" ? Effect.succeed(message) : Effect.fail(new Error(`pushed ${event.data}`)))
    })
    socket.addEventListener("error", () => resume(Effect.fail(new Error("the websocket failed"))))
    return Effect.sync(() => socket.close())
  })

const jtiOf = (token: UserToken.UserToken) =>
  JSON.parse(Buffer.from(Redacted.value(token.accessToken!.accessToken).split(".")[1]!, "base64url").toString()).jti

describe("realtime example on two instances: DPOP=true PRIVATE_KEY_JWT=true", () => {
  it.scopedLive(
    "signed in through A, B calls with the stored proof key and refreshes the DPoP-bound tokens with it, once",
    () =>
      Effect.gen(function*() {
        // tokens that outlive the test and one call per websocket: nothing renews unless the test makes it
        const env = { DPOP: "true", PRIVATE_KEY_JWT: "true", ACCESS_TOKEN_TTL: "300", PUSH_INTERVAL: "1 hour" }
        const context = yield* Layer.build(
          Layer.unwrapEffect(Effect.map(App.config, (options) => Cluster.layer({ ...options, prefix }))).pipe(
            Layer.provideMerge(deleteRedisKeysAfter(prefix))
          )
        ).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
        const app = Context.get(context, Cluster.RealtimeCluster)
        const [a, b] = app.instances as [Cluster.Instance, Cluster.Instance]
        const requests = (filter: Parameters<typeof app.provider.tokenRequests>[0]) =>
          app.provider.tokenRequests({
            clientId: webPrivateKeyJwt.clientId,
            clientAssertion: true,
            dpop: true,
            ...filter
          })

        // sign-in on A's own routes (its redirects name the proxy's address, which the test does not follow)
        const cookie = yield* appSessionCookie(a.url, app.provider, "alice")
        assert.deepStrictEqual(app.routed, [], "nothing went through the proxy")
        assert.strictEqual(yield* requests({ grantType: "authorization_code" }), 1, "A's code exchange, proved")

        // what A stored in Redis: a DPoP token and the session's proof key, both encrypted at rest
        const sessionCookie = cookie.split("; ").find((pair) => pair.startsWith(`${a.login.settings.sessionCookie}=`))!
        const session = Option.getOrThrow(yield* b.login.sessionFromCookie(sessionCookie.split("=")[1]!))
        const user = CurrentUser.storeKey(session.user)
        const signedIn = Option.getOrThrow(yield* a.tokenStore.get(user, { resource }))
        assert.strictEqual(signedIn.accessToken?.tokenType, "DPoP")
        assert.isDefined(signedIn.dpopKey, "the proof key is stored with the tokens")
        const jkt = DPoP.thumbprint(signedIn.dpopKey!)
        const redis = yield* rawRedis()
        const raw = Object.values(yield* Effect.promise(() => redis.hgetall(`${prefix}user:${user}`))).join("\n")
        assert.isNotEmpty(raw)
        for (const secret of [signedIn.dpopKey!, signedIn.refreshToken!, signedIn.accessToken!.accessToken]) {
          assert.notInclude(raw, Redacted.value(secret), "a secret in Redis in the clear")
        }

        // A's websocket: the API verified a proof of the session's key for the token A got at sign-in
        const onA = yield* firstUpdate(a, app.url, cookie)
        assert.strictEqual(onA.instance, "A")
        assert.strictEqual(onA.api.sub, "alice")
        assert.strictEqual(onA.api.client_id, webPrivateKeyJwt.clientId)
        assert.strictEqual(onA.api.jti, jtiOf(signedIn))
        assert.strictEqual(onA.api.cnf?.jkt, jkt)

        // B calls with the same token, proving the key it read from Redis (the API refuses a bound token without)
        const onB = yield* firstUpdate(b, app.url, cookie)
        assert.strictEqual(onB.instance, "B")
        assert.strictEqual(onB.api.jti, onA.api.jti)
        assert.strictEqual(onB.api.cnf?.jkt, jkt)
        assert.strictEqual(yield* requests({ grantType: "refresh_token" }), 0, "no refresh yet")

        // the API refuses B's next call (its proof valid): B refreshes with the stored refresh token and key, and
        // retries with the new token
        yield* app.demoApi.rejectNextValidTokens(1)
        const refreshed = yield* firstUpdate(b, app.url, cookie)
        assert.strictEqual(refreshed.instance, "B")
        assert.strictEqual(refreshed.api.sub, "alice")
        assert.notStrictEqual(refreshed.api.jti, onA.api.jti, "B called with a new token")
        assert.strictEqual(refreshed.api.cnf?.jkt, jkt, "the new token is bound to the session's key")
        assert.strictEqual(yield* requests({ grantType: "refresh_token" }), 1, "one refresh, B's, with a proof")
        assert.strictEqual(yield* app.provider.tokenRequests(), 2, "no other token request, no other client")

        // B stored the rotated refresh token beside the same key; the old one was used once, the grant goes on
        const afterRefresh = Option.getOrThrow(yield* b.tokenStore.get(user, { resource }))
        assert.strictEqual(jtiOf(afterRefresh), refreshed.api.jti)
        assert.strictEqual(afterRefresh.accessToken?.tokenType, "DPoP")
        assert.strictEqual(DPoP.thumbprint(afterRefresh.dpopKey!), jkt)
        const [used, rotated] = [Redacted.value(signedIn.refreshToken!), Redacted.value(afterRefresh.refreshToken!)]
        assert.notStrictEqual(rotated, used)
        assert.isFalse((yield* app.provider.introspect(used)).active, "the refresh token A stored was spent")
        assert.isTrue((yield* app.provider.introspect(rotated)).active, "no reuse revoked the grant")
      }),
    { timeout: 60_000 }
  )
})
