/**
 * The realtime example in headless Chromium: sign-in through the provider's own login page, live data over the
 * websocket across access token refreshes, two users at once, sign-out, and refused forgeries.
 */
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import { Resources } from "@effect-atm/dev-identity/IdentityProvider"
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs/promises"
import { type BrowserContext, type Page } from "playwright-core"
import * as App from "../../examples/realtime/src/App.js"
import { Chromium, ChromiumLive, run, signIn, text } from "./chromium.js"

const count = (page: Page, selector: string) => text(page, selector).then(Number)

/** The user's tokens, read on the server: session cookie → session → token store. */
const serverTokens = async (app: App.RealtimeApp["Type"], context: BrowserContext) => {
  const cookie = (await context.cookies()).find((c) => c.name === app.login.settings.sessionCookie)
  assert.isDefined(cookie, "the browser holds a session cookie")
  const session = Option.getOrThrow(await run(Effect.orDie(app.login.sessionFromCookie(cookie!.value))))
  const stored = await run(
    app.tokenStore.get(CurrentUser.storeKey(session.user), { resource: Resources.demoApi }).pipe(Effect.orDie)
  )
  return { cookie: cookie!, session, stored: Option.getOrUndefined(stored) }
}

describe("realtime example in Chromium", () => {
  // short-lived access tokens: a refresh every ~2 s while the page is open
  layer(Layer.merge(App.layer({ accessTokenTtl: 4, interval: "500 millis" }), ChromiumLive), {
    excludeTestServices: true,
    timeout: "30 seconds"
  })("live data across refreshes", (it) => {
    it.effect("a user signs in, sees live data with their subject, across two access token refreshes", () =>
      Effect.gen(function*() {
        const app = yield* App.RealtimeApp
        const browser = yield* Chromium
        yield* Effect.promise(async () => {
          const context = await browser.newContext({ viewport: { width: 1200, height: 820 } })
          const page = await context.newPage()
          await signIn(page, app.url, "alice")
          assert.strictEqual(await text(page, "#user-name"), "alice")

          const refreshesBefore = await run(app.provider.tokenRequests({ grantType: "refresh_token" }))
          const seen = new Set<string>()
          const deadline = Date.now() + 15_000
          while ((await count(page, "#refresh-count")) < 2 || seen.size < 3) {
            if (Date.now() > deadline) assert.fail(`only ${seen.size} tokens seen`)
            assert.strictEqual(await text(page, "#api-sub"), "alice", "the API always sees the user's own token")
            const jti = await text(page, "#api-jti")
            if (jti !== "—") seen.add(jti)
            await page.waitForTimeout(200)
          }
          const updates = await count(page, "#update-count")
          await page.waitForFunction((n) => Number(document.getElementById("update-count")!.textContent) > n, updates)
          assert.isTrue(await page.isHidden("#error"), "no failed update")
          assert.isAtLeast(
            (await run(app.provider.tokenRequests({ grantType: "refresh_token" }))) - refreshesBefore,
            2,
            "the provider saw the refreshes"
          )
          assert.notStrictEqual(await text(page, "#last-refresh"), "not yet")

          // the tokens stay on the server: the browser has an HttpOnly session id, and nothing else
          const { cookie, stored } = await serverTokens(app, context)
          assert.isTrue(cookie.httpOnly)
          assert.strictEqual(cookie.sameSite, "Lax")
          const html = await page.content()
          const storage = await page.evaluate(() =>
            JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage })
          )
          for (const secret of [stored!.refreshToken!, stored!.accessToken!.accessToken]) {
            assert.notInclude(html + storage + cookie.value, Redacted.value(secret))
          }

          await Fs.mkdir("test-output", { recursive: true })
          await page.screenshot({ path: "test-output/realtime-signed-in.png" })
          await context.close()
        })
      }))

    it.effect("two users in two browsers each see only their own data", () =>
      Effect.gen(function*() {
        const app = yield* App.RealtimeApp
        const browser = yield* Chromium
        yield* Effect.promise(async () => {
          const users = ["alice", "bob"] as const
          const contexts = await Promise.all(users.map(() => browser.newContext()))
          const pages = await Promise.all(contexts.map((context) => context.newPage()))
          await Promise.all(users.map((user, i) => signIn(pages[i]!, app.url, user)))
          for (let round = 0; round < 4; round++) {
            for (const [i, user] of users.entries()) {
              const updates = await count(pages[i]!, "#update-count")
              await pages[i]!.waitForFunction(
                (n) => Number(document.getElementById("update-count")!.textContent) > n,
                updates
              )
              assert.strictEqual(await text(pages[i]!, "#api-sub"), user)
              assert.strictEqual(await text(pages[i]!, "#user-name"), user)
            }
          }
          await Promise.all(contexts.map((context) => context.close()))
        })
      }))
  })

  // long-lived access tokens: no refresh can rotate the refresh token under the sign-out test
  layer(Layer.merge(App.layer({ accessTokenTtl: 300, interval: "500 millis" }), ChromiumLive), {
    excludeTestServices: true,
    timeout: "30 seconds"
  })("sign-out and forgeries", (it) => {
    it.effect("sign-out returns the page to signed out, revokes the refresh token and closes the websocket", () =>
      Effect.gen(function*() {
        const app = yield* App.RealtimeApp
        const browser = yield* Chromium
        yield* Effect.promise(async () => {
          const context = await browser.newContext()
          const page = await context.newPage()
          await signIn(page, app.url, "carol")
          // a second tab of the same browser, with its own websocket
          const other = await context.newPage()
          const closed = new Promise<void>((resolve) =>
            other.on("websocket", (socket) => socket.on("close", () => resolve()))
          )
          await other.goto(app.url)
          await other.waitForSelector("#connection[data-state=live]")
          assert.strictEqual(await run(app.login.connections), 2)

          const { session, stored } = await serverTokens(app, context)
          const refreshToken = Redacted.value(stored!.refreshToken!)
          assert.isTrue((await run(app.provider.introspect(refreshToken))).active)

          await page.click("#sign-out")
          // RP-initiated logout: the provider asks for confirmation, then sends the browser back
          await page.getByRole("button", { name: "Sign out" }).click()
          await page.waitForSelector("#signed-out")
          assert.strictEqual(new URL(page.url()).origin, app.url)
          assert.include(await text(page, "#signed-out"), "You are signed out")

          await closed
          await other.waitForSelector("#connection[data-state=ended]")
          assert.strictEqual(await run(app.login.connections), 0)
          assert.isFalse((await run(app.provider.introspect(refreshToken))).active, "the refresh token is revoked")
          const after = await run(
            app.tokenStore.get(CurrentUser.storeKey(session.user), { resource: Resources.demoApi }).pipe(Effect.orDie)
          )
          assert.isTrue(Option.isNone(after), "the server-side store holds nothing for the session")
          assert.isUndefined(
            (await context.cookies()).find((c) => c.name === app.login.settings.sessionCookie),
            "the session cookie is gone"
          )
          await context.close()
        })
      }))

    it.effect("a tampered session cookie and a forged callback are refused", () =>
      Effect.gen(function*() {
        const app = yield* App.RealtimeApp
        const browser = yield* Chromium
        yield* Effect.promise(async () => {
          const context = await browser.newContext()
          const page = await context.newPage()
          await signIn(page, app.url, "dave")
          const { cookie } = await serverTokens(app, context)
          const flipped = cookie.value.slice(0, -1) + (cookie.value.endsWith("A") ? "B" : "A")
          await context.addCookies([{ ...cookie, value: flipped }])
          await page.goto(app.url)
          await page.waitForSelector("#signed-out")
          assert.strictEqual(await page.evaluate(() => fetch("/api/me").then((r) => r.status)), 401)
          const socket = await page.evaluate(() =>
            new Promise<string>((resolve) => {
              const ws = new WebSocket(`ws://${location.host}/ws`)
              ws.onopen = () => resolve("open")
              ws.onclose = () => resolve("refused")
            })
          )
          assert.strictEqual(socket, "refused")

          // a callback this browser never asked for
          const forged = await page.goto(`${app.url}/auth/callback?code=forged-code&state=forged-state`)
          assert.strictEqual(forged!.status(), 400)
          assert.include(await text(page, "h1"), "Sign-in failed")
          // a callback with another state than the sign-in this browser started (a fresh browser: dave's is
          // still signed in at the provider, which would answer the sign-in at once)
          await context.close()
          const fresh = await browser.newContext()
          const attacked = await fresh.newPage()
          await attacked.goto(`${app.url}/auth/login`)
          await attacked.waitForSelector("input[name=login]")
          const wrongState = await attacked.goto(
            `${app.url}/auth/callback?code=forged-code&state=forged-state&iss=${
              encodeURIComponent(app.provider.issuer)
            }`
          )
          assert.strictEqual(wrongState!.status(), 400)
          assert.include(await text(attacked, "[role=alert]"), "state")
          assert.isUndefined(
            (await fresh.cookies()).find((c) => c.name === app.login.settings.sessionCookie),
            "no session was created"
          )
          await fresh.close()
        })
      }))
  })
})
