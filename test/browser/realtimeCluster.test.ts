/**
 * The realtime example on two instances sharing Redis, behind its round-robin proxy, in headless Chromium: a
 * sign-in handled by one instance gives live data over a websocket on the other; a sign-out on one closes the
 * websockets on both; a sign-out at the provider (back-channel logout) ends the session on both.
 */
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import { Resources } from "@effect-atm/dev-identity/IdentityProvider"
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { BrowserContext } from "playwright-core"
import * as Cluster from "../../examples/realtime/src/Cluster.js"
import { deleteRedisKeysAfter, runId } from "../support/stores.js"
import { Chromium, ChromiumLive, run, signIn, text } from "./chromium.js"

/** A tab of the signed-in browser whose websocket is live; resolves `closed` with the time its socket closes. */
const openTab = async (context: BrowserContext, url: string) => {
  const page = await context.newPage()
  let resolveClosed: (at: number) => void = () => {}
  const closed = new Promise<number>((resolve) => resolveClosed = resolve)
  page.on("websocket", (socket) => socket.on("close", () => resolveClosed(Date.now())))
  await page.goto(url)
  await page.waitForSelector("#connection[data-state=live]")
  // the first update names the instance the connection runs on
  await page.waitForFunction(() => document.getElementById("ws-instance")?.textContent !== "—")
  return { page, closed, instance: await text(page, "#ws-instance") }
}

const prefix = `test:${runId()}:realtime:`

describe("realtime example on two instances in Chromium", () => {
  layer(
    Layer.merge(
      Cluster.layer({ prefix, accessTokenTtl: 300, interval: "500 millis" }).pipe(Layer.orDie),
      ChromiumLive
    ).pipe(Layer.provideMerge(deleteRedisKeysAfter(prefix))),
    { excludeTestServices: true, timeout: "60 seconds" }
  )("sessions, tokens and the bus shared through Redis", (it) => {
    it.effect(
      "signed in through one instance, live data from the other; a sign-out on one closes the websockets on both within a second",
      () =>
        Effect.gen(function*() {
          const app = yield* Cluster.RealtimeCluster
          const browser = yield* Chromium
          yield* Effect.promise(async () => {
            const context = await browser.newContext()
            const first = await context.newPage()
            await signIn(first, app.url, "erin", 15_000)
            const callback = app.routed.find((r) => r.path.startsWith("/auth/callback"))!
            assert.isDefined(callback, "the callback went through the proxy")
            // two tabs: the proxy rotates websockets, so one runs on each instance
            const tabs = [await openTab(context, app.url), await openTab(context, app.url)]
            assert.sameMembers(tabs.map((tab) => tab.instance), ["A", "B"])
            const other = tabs.find((tab) => tab.instance !== callback.instance)!
            // the session the callback's instance created is found by the other, with the tokens it stored
            assert.strictEqual(await text(other.page, "#api-sub"), "erin", "live data on the other instance")
            const cookie = (await context.cookies()).find((c) =>
              c.name === app.instances[0]!.login.settings.sessionCookie
            )!
            const onB = app.instances.find((i) => i.name === other.instance)!
            const session = Option.getOrThrow(await run(Effect.orDie(onB.login.sessionFromCookie(cookie.value))))
            const stored = Option.getOrThrow(
              await run(
                onB.tokenStore.get(CurrentUser.storeKey(session.user), { resource: Resources.demoApi }).pipe(
                  Effect.orDie
                )
              )
            )
            const refreshToken = Redacted.value(stored.refreshToken!)
            assert.isTrue((await run(app.provider.introspect(refreshToken))).active)

            // sign out in the first tab: whichever instance takes the POST, the other's websocket closes too
            const before = app.routed.length
            // from the moment the browser sends the sign-out
            const sent = first.waitForRequest((request) =>
              request.url().endsWith("/auth/logout") && request.method() === "POST"
            ).then(() => Date.now())
            await first.click("#sign-out")
            const signedOutAt = await sent
            const logout = app.routed.slice(before).find((r) => r.path === "/auth/logout" && r.method === "POST")!
            const closedAt = await Promise.all(tabs.map((tab) => tab.closed))
            const remote = tabs.find((tab) => tab.instance !== logout.instance)!
            const latency = closedAt[tabs.indexOf(remote)]! - signedOutAt
            console.log(`sign-out on ${logout.instance} → websocket on ${remote.instance} closed after ${latency} ms`)
            assert.isBelow(latency, 1_000, "the other instance's websocket closes within a second")
            for (const tab of tabs) await tab.page.waitForSelector("#connection[data-state=ended]")
            for (const instance of app.instances) assert.strictEqual(await run(instance.login.connections), 0)
            assert.isFalse((await run(app.provider.introspect(refreshToken))).active, "the refresh token is revoked")
            for (const instance of app.instances) {
              const after = await run(
                instance.tokenStore.get(CurrentUser.storeKey(session.user), { resource: Resources.demoApi }).pipe(
                  Effect.orDie
                )
              )
              assert.isTrue(Option.isNone(after), `instance ${instance.name} holds no token for the session`)
            }
            await context.close()
          })
        })
    )

    it.effect("a sign-out at the provider (back-channel logout) ends the session on both instances", () =>
      Effect.gen(function*() {
        const app = yield* Cluster.RealtimeCluster
        const browser = yield* Chromium
        yield* Effect.promise(async () => {
          const context = await browser.newContext()
          const first = await context.newPage()
          await signIn(first, app.url, "frank", 15_000)
          const tabs = [await openTab(context, app.url), await openTab(context, app.url)]
          assert.sameMembers(tabs.map((tab) => tab.instance), ["A", "B"])
          const cookie = (await context.cookies()).find((c) =>
            c.name === app.instances[0]!.login.settings.sessionCookie
          )!
          const session = Option.getOrThrow(
            await run(Effect.orDie(app.instances[0]!.login.sessionFromCookie(cookie.value)))
          )
          assert.isString(session.providerSessionId, "the session knows its provider session (sid)")

          // the user signs out at the provider itself, not through the app
          const before = app.routed.length
          await first.goto(app.provider.endSessionEndpoint)
          await first.getByRole("button", { name: "Sign out" }).click()
          await Promise.all(tabs.map((tab) => tab.closed))
          const received = app.routed.slice(before).filter((r) => r.path === "/auth/backchannel-logout")
          assert.lengthOf(received, 1, "the provider sent one logout token, through the proxy")
          for (const tab of tabs) await tab.page.waitForSelector("#connection[data-state=ended]")
          for (const instance of app.instances) {
            assert.isTrue(Option.isNone(await run(Effect.orDie(instance.login.sessionFromCookie(cookie.value)))))
            assert.strictEqual(await run(instance.login.connections), 0)
          }
          // the app's own page now shows the browser signed out
          await first.goto(app.url)
          await first.waitForSelector("#signed-out")
          await context.close()
        })
      }))

    it.effect("the back-channel logout receiver refuses what is not a valid logout token", () =>
      Effect.gen(function*() {
        const app = yield* Cluster.RealtimeCluster
        const post = (body: Record<string, string>) =>
          Effect.promise(async () => {
            const response = await fetch(`${app.url}/auth/backchannel-logout`, {
              method: "POST",
              headers: { "content-type": "application/x-www-form-urlencoded" },
              body: new URLSearchParams(body)
            })
            return { status: response.status, body: (await response.json()) as { error_description: string } }
          })
        const missing = yield* post({})
        assert.strictEqual(missing.status, 400)
        assert.include(missing.body.error_description, "no logout_token")
        // signed by the provider, for this client, but an access token: no logout event
        const accessToken = yield* app.provider.mintAccessToken({ audience: "web" })
        const notLogout = yield* post({ logout_token: accessToken })
        assert.strictEqual(notLogout.status, 400)
        assert.include(notLogout.body.error_description, "events")
        // the provider's signature with another audience
        const otherAudience = yield* post({ logout_token: yield* app.provider.mintAccessToken() })
        assert.strictEqual(otherAudience.status, 400)
        const forged = yield* post({ logout_token: `${accessToken.slice(0, -4)}AAAA` })
        assert.strictEqual(forged.status, 400)
        assert.include(forged.body.error_description, "signature")
      }))

    it.effect("a logout token is used once in the cluster: replayed to the other instance, it is refused", () =>
      Effect.gen(function*() {
        const app = yield* Cluster.RealtimeCluster
        const [a, b] = app.instances
        // straight to each instance, past the proxy's rotation
        const post = (instance: Cluster.Instance, token: string) =>
          Effect.promise(async () => {
            const response = await fetch(`${instance.url}/auth/backchannel-logout`, {
              method: "POST",
              headers: { "content-type": "application/x-www-form-urlencoded" },
              body: new URLSearchParams({ logout_token: token })
            })
            const body = await response.text()
            return { status: response.status, body: body === "" ? undefined : JSON.parse(body) }
          })
        const sid = `sid-${runId()}`
        const token = yield* app.provider.mintLogoutToken({ sid, sub: "grace" })
        assert.strictEqual((yield* post(a!, token)).status, 200, "A accepts the logout token")
        const replayed = yield* post(b!, token)
        assert.strictEqual(replayed.status, 400, "B refuses the same logout token")
        assert.deepStrictEqual(replayed.body, {
          error: "invalid_request",
          error_description: "the logout token was already used (jti)"
        })
        assert.strictEqual((yield* post(a!, token)).status, 400, "A refuses it too")
        // another logout token of the same provider session is a new one
        const fresh = yield* app.provider.mintLogoutToken({ sid, sub: "grace" })
        assert.strictEqual((yield* post(b!, fresh)).status, 200, "B accepts a fresh logout token")
      }))
  })
})
