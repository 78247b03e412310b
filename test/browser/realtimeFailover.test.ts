/**
 * The realtime example on two instances behind its proxy, in headless Chromium, with instance A in a process of its
 * own: A is killed (SIGKILL) while it holds the cluster-wide renewal lease in the middle of a refresh, and the
 * user's page on B goes on. B takes the lease over once A's runs out, refreshes with the refresh token A never got
 * to use (the provider was still holding A's request when A died), and the page gets live data with the new token,
 * with no error shown. Assertions are about order (what happened before and after A's death), never durations.
 */
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import * as DemoApi from "@effect-atm/dev-identity/DemoApi"
import * as IdentityProvider from "@effect-atm/dev-identity/IdentityProvider"
import { assert, describe, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import { fileURLToPath } from "node:url"
import type { Page } from "playwright-core"
import * as Cluster from "../../examples/realtime/src/Cluster.js"
import * as Proxy from "../../examples/realtime/src/Proxy.js"
import { type Instance, spawnInstance, stopInstance } from "../stores/instances.js"
import { deleteRedisKeysAfter, rawRedis, redisKeys, redisUrl, runId } from "../support/stores.js"
import { Chromium, ChromiumLive, run, signIn, text } from "./chromium.js"

const worker = fileURLToPath(new URL("./realtimeInstance.worker.ts", import.meta.url))
const prefix = `test:${runId()}:failover:`

class Failover extends Context.Tag("test/Failover")<Failover, {
  readonly url: string
  readonly proxy: Proxy.Proxy
  readonly provider: IdentityProvider.IdentityProvider["Type"]
  readonly demoApi: DemoApi.DemoApi["Type"]
  readonly a: Instance
  readonly b: Cluster.Instance
}>() {}

/** The proxy, the provider (5-minute access tokens: no renewal unless the test asks), A in a child process, B here. */
const FailoverLive = Layer.scoped(
  Failover,
  Effect.gen(function*() {
    const proxy = yield* Proxy.make(0)
    const url = `http://127.0.0.1:${proxy.port}`
    const dev = yield* Layer.build(
      DemoApi.layer().pipe(
        Layer.provideMerge(IdentityProvider.layer({ accessTokenTtl: 300, refreshTokenTtl: 3600 }))
      )
    )
    const provider = Context.get(dev, IdentityProvider.IdentityProvider)
    const demoApi = Context.get(dev, DemoApi.DemoApi)
    const secret = Crypto.randomBytes(32).toString("base64url")
    const key = Crypto.randomBytes(32).toString("base64")
    const interval = Duration.millis(500)
    const a = yield* Effect.acquireRelease(
      Effect.promise(() =>
        spawnInstance({
          REALTIME_INSTANCE: JSON.stringify({
            name: "A",
            url,
            redisUrl,
            prefix,
            secret,
            key,
            intervalMillis: Duration.toMillis(interval),
            issuer: provider.issuer,
            demoApiUrl: demoApi.url,
            // A's refresh is pending until A dies, however long the test takes to get there
            tokenRequestTimeoutMillis: 600_000
          })
        }, worker)
      ),
      (a) => Effect.promise(() => stopInstance(a))
    )
    const b = yield* Cluster.instance("B", {
      url,
      redisUrl,
      prefix,
      secret: Redacted.make(secret),
      key: Redacted.make(key),
      interval,
      issuer: provider.issuer,
      demoApiUrl: demoApi.url
    })
    proxy.setTargets([{ name: "A", port: a.hello.port as number }, { name: "B", port: b.port }])
    return { url, proxy, provider, demoApi, a, b: b.instance }
  })
).pipe(Layer.orDie)

interface Update {
  readonly type: string
  readonly instance?: string
  readonly api?: { readonly jti: string; readonly sub: string }
}

/** Every message the page's websockets receive, and a way to wait for one. */
const recordMessages = (page: Page) => {
  const messages: Array<Update> = []
  const waiters: Array<{ readonly test: (m: Update) => boolean; readonly resolve: (m: Update) => void }> = []
  page.on("websocket", (socket) =>
    socket.on("framereceived", (frame) => {
      const message = JSON.parse(String(frame.payload)) as Update
      messages.push(message)
      for (const waiter of waiters.splice(0)) {
        if (waiter.test(message)) waiter.resolve(message)
        else waiters.push(waiter)
      }
    }))
  const next = (test: (m: Update) => boolean) =>
    new Promise<Update>((resolve) => {
      const found = messages.find(test)
      if (found !== undefined) resolve(found)
      else waiters.push({ test, resolve })
    })
  return { messages, next }
}

/** Polls `condition` until it holds: a wait for something the test cannot be told about, not a timing. */
const until = async (condition: () => Promise<boolean>, what: string, timeout = 60_000) => {
  const give = Date.now() + timeout
  while (!(await condition())) {
    if (Date.now() > give) throw new Error(`gave up waiting: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const jtiOf = (jwt: string): string => JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8")).jti

describe("realtime example on two instances in Chromium, one of them killed", () => {
  layer(
    Layer.mergeAll(FailoverLive, ChromiumLive).pipe(Layer.provideMerge(deleteRedisKeysAfter(prefix))),
    { excludeTestServices: true, timeout: "120 seconds" }
  )("A in a child process, B here, sharing Redis", (it) => {
    it.scoped(
      "A killed while it holds the renewal lease mid-refresh: the page on B goes on with a token B got after A died",
      () =>
        Effect.gen(function*() {
          const { a, b, demoApi, provider, proxy, url } = yield* Failover
          const browser = yield* Chromium
          const redis = yield* rawRedis()
          yield* Effect.promise(async () => {
            const context = await browser.newContext()
            // the dashboard after sign-in: the proxy's first websocket goes to A
            const first = await context.newPage()
            await signIn(first, url, "heidi", 30_000)
            await first.waitForFunction(() => document.getElementById("ws-instance")?.textContent === "A")
            const cookie = (await context.cookies()).find((c) => c.name === b.login.settings.sessionCookie)!
            const session = Option.getOrThrow(await run(Effect.orDie(b.login.sessionFromCookie(cookie.value))))
            const stored = () =>
              run(
                b.tokenStore.get(CurrentUser.storeKey(session.user), { resource: IdentityProvider.Resources.demoApi })
                  .pipe(Effect.orDie, Effect.map(Option.getOrThrow))
              )
            const before = await stored()
            const refreshToken = Redacted.value(before.refreshToken!)
            const refreshes = () => run(provider.tokenRequests({ grantType: "refresh_token" }))
            assert.strictEqual(await refreshes(), 0)

            // A (the only instance with a connection) is told its token is revoked: it renews, under the lease, and
            // the provider holds its refresh request (until its client goes away)
            await run(provider.setTokenFault({ _tag: "Delay", millis: 600_000 }, { times: 1 }))
            await run(demoApi.rejectNextValidTokens(1))
            await until(async () => (await refreshes()) === 1, "A's refresh reaches the provider")
            const leases = await run(redisKeys(redis, `${prefix}lock:`))
            assert.lengthOf(leases, 1, "A holds the renewal lease while its refresh is pending")

            // the user's page on B, live with the token A is renewing (still valid: B does not renew it)
            const page = await context.newPage()
            page.setDefaultTimeout(60_000)
            const seen = recordMessages(page)
            await page.goto(url)
            const firstUpdate = await seen.next((m) => m.type === "update")
            assert.strictEqual(firstUpdate.instance, "B")
            assert.strictEqual(firstUpdate.api!.jti, jtiOf(Redacted.value(before.accessToken!.accessToken)))
            const oldJti = firstUpdate.api!.jti

            // A dies mid-refresh: no finalizer, no release of the lease; the load balancer stops sending it requests
            a.child.kill("SIGKILL")
            assert.strictEqual(await a.exited, "SIGKILL")
            proxy.setTargets([{ name: "B", port: Number(new URL(b.url).port) }])
            const refreshesAtDeath = await refreshes()
            assert.strictEqual(refreshesAtDeath, 1, "only A's refresh was sent before A died")
            assert.isTrue((await run(provider.introspect(refreshToken))).active, "A's death lost no grant")
            const updatesAtDeath = seen.messages.length

            // now B's token is refused too: B must renew, and waits for A's lease to run out
            await run(demoApi.rejectNextValidTokens(1))
            const renewed = await seen.next((m) => m.type === "update" && m.api!.jti !== oldJti)
            assert.strictEqual(renewed.instance, "B")
            assert.strictEqual(renewed.api!.sub, "heidi")

            // B's refresh came after A's death, with the refresh token A held, and B's page uses its result
            assert.strictEqual(await refreshes(), refreshesAtDeath + 1, "one refresh after A's death: B's")
            const after = await stored()
            assert.strictEqual(jtiOf(Redacted.value(after.accessToken!.accessToken)), renewed.api!.jti)
            const rotated = Redacted.value(after.refreshToken!)
            assert.notStrictEqual(rotated, refreshToken)
            assert.isFalse((await run(provider.introspect(refreshToken))).active, "B used A's refresh token")
            assert.isTrue((await run(provider.introspect(rotated))).active, "the grant goes on")
            assert.isAbove(seen.messages.length, updatesAtDeath)

            // and the user saw no error: every message was live data, the page is live
            const problems = seen.messages.filter((m) => m.type !== "update")
            assert.deepStrictEqual(problems, [], "the page got an error or a sign-out")
            assert.isTrue(await page.isHidden("#error"), "an error is shown")
            assert.strictEqual(await page.getAttribute("#connection", "data-state"), "live")
            assert.strictEqual(await text(page, "#api-sub"), "heidi")
            await context.close()
          })
        }),
      { timeout: 180_000 }
    )
  })
})
