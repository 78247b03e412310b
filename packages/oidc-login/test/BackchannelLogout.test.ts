/**
 * Back-channel logout when the session store fails for a moment: the logout token's `jti` is given back, so that
 * the provider's retry of the token ends the sessions, while a replay after that is still refused.
 */
import { SessionStoreError } from "@effect-atm/core/SessionStore"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Harness from "./harness.js"

/** What the harness's store does differently: `remove` (ending a session) and `releaseClaim` fail when armed. */
interface Faults {
  failRemoves: number
  failReleases: number
  releases: number
}

const unavailable = (operation: "remove" | "release") =>
  new SessionStoreError({ store: "memory", operation, reason: "unavailable for a moment" })

const faulty = (faults: Faults) =>
  Harness.make({
    sessions: (store) => ({
      ...store,
      remove: (id) =>
        Effect.suspend(() => faults.failRemoves-- > 0 ? Effect.fail(unavailable("remove")) : store.remove(id)),
      releaseClaim: (key, until) =>
        Effect.suspend(() => {
          faults.releases++
          return faults.failReleases-- > 0 ? Effect.fail(unavailable("release")) : store.releaseClaim(key, until)
        })
    })
  })

const post = (harness: Harness.Harness, token: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${harness.url}/auth/backchannel-logout`, {
      method: "POST",
      body: new URLSearchParams({ logout_token: token })
    })
    const body = await response.text()
    return { status: response.status, body: body === "" ? undefined : JSON.parse(body) }
  })

/** Signs `account` in with a new browser; returns the browser and the session's subject. */
const signedIn = (harness: Harness.Harness, account: string) =>
  Effect.gen(function*() {
    const { browser, response } = yield* Harness.signIn(harness, account)
    assert.strictEqual(response.status, 303, "the sign-in did not complete")
    const me = yield* browser.fetch("/api/me")
    assert.strictEqual(me.status, 200)
    return { browser, subject: (yield* Harness.json(me)).sub as string }
  })

const status = (browser: Harness.Browser) => Effect.map(browser.fetch("/api/me"), (response) => response.status)

describe("back-channel logout", () => {
  it.scopedLive("a logout that failed to end the sessions is accepted on retry; a replay after it ends nothing", () =>
    Effect.gen(function*() {
      const faults: Faults = { failRemoves: 0, failReleases: 0, releases: 0 }
      const harness = yield* faulty(faults)
      const first = yield* signedIn(harness, "alice")
      const second = yield* signedIn(harness, "alice")
      // a token naming the user only: every session of the user ends
      const token = yield* harness.provider.mintLogoutToken({ sub: first.subject })

      faults.failRemoves = 1
      const failed = yield* post(harness, token)
      assert.strictEqual(failed.status, 500, "the logout whose sessions could not be ended did not answer 500")
      assert.strictEqual(failed.body.error, "server_error")
      assert.strictEqual(faults.releases, 1, "the jti was not given back")
      assert.strictEqual((yield* harness.sessions.findBySubject(first.subject)).length, 2, "a session was ended")
      assert.strictEqual(yield* status(first.browser), 200)
      assert.strictEqual(yield* status(second.browser), 200)

      const retried = yield* post(harness, token)
      assert.strictEqual(retried.status, 200, "the provider's retry of the token was refused")
      assert.deepStrictEqual(yield* harness.sessions.findBySubject(first.subject), [], "the retry ended no session")
      assert.strictEqual(yield* status(first.browser), 401)
      assert.strictEqual(yield* status(second.browser), 401)

      // the user signs in again: a replay of the token must not end the new session
      const later = yield* signedIn(harness, "alice")
      const replayed = yield* post(harness, token)
      assert.strictEqual(replayed.status, 400, "a replay after the successful logout was accepted")
      assert.deepStrictEqual(replayed.body, {
        error: "invalid_request",
        error_description: "the logout token was already used (jti)"
      })
      assert.strictEqual(yield* status(later.browser), 200, "the replay ended the user's newer session")
      assert.strictEqual((yield* harness.sessions.findBySubject(first.subject)).length, 1)
      assert.strictEqual(faults.releases, 1, "a refused or successful logout gave its jti back")
    }))

  it.scopedLive("a jti that cannot be given back: still 500, and the sessions are left as they were", () =>
    Effect.gen(function*() {
      const faults: Faults = { failRemoves: 1, failReleases: 1, releases: 0 }
      const harness = yield* faulty(faults)
      const user = yield* signedIn(harness, "alice")
      const [session] = yield* harness.sessions.findBySubject(user.subject)
      const token = yield* harness.provider.mintLogoutToken({ sid: session!.providerSessionId, sub: user.subject })
      const failed = yield* post(harness, token)
      assert.strictEqual(failed.status, 500, "a failed release changed the answer")
      assert.strictEqual(faults.releases, 1)
      assert.strictEqual(yield* status(user.browser), 200)
      // the claim was kept: the retry is refused until the provider sends a new logout token
      assert.strictEqual((yield* post(harness, token)).status, 400)
      const fresh = yield* harness.provider.mintLogoutToken({ sid: session!.providerSessionId, sub: user.subject })
      assert.strictEqual((yield* post(harness, fresh)).status, 200)
      assert.strictEqual(yield* status(user.browser), 401)
    }))
})
