/** Headless Debian Chromium for the browser tests, and the steps they share. */
import { assert } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Browser, chromium, type Page } from "playwright-core"

export class Chromium extends Context.Tag("test/Chromium")<Chromium, Browser>() {}

// without the background-networking flags, Chromium's own connections are refused by this machine's closed network
export const ChromiumLive = Layer.scoped(
  Chromium,
  Effect.acquireRelease(
    Effect.promise(() =>
      chromium.launch({
        executablePath: "/usr/bin/chromium",
        headless: true,
        args: [
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync"
        ]
      })
    ),
    (browser) => Effect.promise(() => browser.close())
  )
)

export const run = <A>(effect: Effect.Effect<A>): Promise<A> => Effect.runPromise(effect)

export const text = (page: Page, selector: string) => page.textContent(selector).then((value) => value ?? "")

/**
 * Signs `account` in through the app's button and the provider's login page; ends on the live dashboard, back at
 * the app's origin. `timeout` bounds each step (ms).
 */
export const signIn = async (page: Page, url: string, account: string, timeout = 10_000): Promise<void> => {
  page.setDefaultTimeout(timeout)
  await page.goto(url)
  await page.click("#sign-in")
  await page.waitForSelector("input[name=login]")
  assert.notInclude(page.url(), url, "the login form is the provider's, not the app's")
  await page.fill("input[name=login]", account)
  await page.fill("input[name=password]", "any password")
  await page.getByRole("button", { name: "Sign in" }).click()
  await page.waitForSelector("#dashboard")
  assert.strictEqual(new URL(page.url()).origin, url)
  await page.waitForSelector("#connection[data-state=live]")
}
