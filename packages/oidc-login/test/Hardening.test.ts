import { AuthorizationFailed, CodeExchangeFailed } from "@effect-atm/oidc-login/LoginError"
import * as OidcLogin from "@effect-atm/oidc-login/OidcLogin"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import { safeReturnTo } from "../src/internal/oidcLogin.js"
import * as Harness from "./harness.js"

const site = "http://site.invalid"

/** What the callback relies on: a path on this site that a Location header accepts. */
const acceptable = (value: string) => {
  assert.isTrue(value.startsWith("/"), value)
  assert.strictEqual(new URL(value, site).origin, site, value)
  assert.doesNotThrow(() => Http.validateHeaderValue("location", value), undefined, undefined, value)
}

describe("login hardening", () => {
  it("returnTo: what passes is a path on this site that a Location header accepts, non-ASCII encoded", () => {
    assert.strictEqual(safeReturnTo("/café/ü?q=a b"), "/caf%C3%A9/%C3%BC?q=a%20b")
    assert.strictEqual(safeReturnTo("/x\u2028y"), "/x%E2%80%A8y")
    assert.strictEqual(safeReturnTo("/😀"), "/%F0%9F%98%80")
    for (const refused of ["//evil.example", "/\\evil.example", "https://evil.example/", "/a\ud800", "/a\nb", "x"]) {
      assert.strictEqual(safeReturnTo(refused), "/", JSON.stringify(refused))
    }
    // arbitrary strings (every UTF-16 code unit, lone surrogates included): never anything a header refuses
    for (let i = 0; i < 2_000; i++) {
      const length = 1 + Math.floor(Math.random() * 12)
      const units = Array.from(
        { length },
        () => Math.random() < 0.5 ? 0x20 + Math.floor(Math.random() * 0x60) : Math.floor(Math.random() * 0x10000)
      )
      acceptable(safeReturnTo(`/${String.fromCharCode(...units)}`))
    }
  })

  it("provider text is escaped in messages (and so in logs): no forged lines, no terminal escapes", () => {
    const forged = "End-User aborted\nlevel=ERROR message=\"forged\"\u001b[31m\u2028\u202e"
    for (
      const error of [
        new AuthorizationFailed({ error: "access_denied\r\nx", errorDescription: forged }),
        new CodeExchangeFailed({ status: 400, error: "invalid_grant", errorDescription: forged })
      ]
    ) {
      assert.notMatch(error.message, /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/)
      assert.include(error.message, "\\u000a")
    }
    assert.isAtMost(new AuthorizationFailed({ error: "x", errorDescription: "y".repeat(5000) }).message.length, 600)
  })

  it.scopedLive("a returnTo Node would refuse in a Location header is encoded: the sign-in completes", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make()
      const { response } = yield* Harness.signIn(harness, "alice", { returnTo: "/café/ü?q=a b\u2028" })
      assert.strictEqual(response.status, 303)
      assert.strictEqual(response.headers.get("location"), "/caf%C3%A9/%C3%BC?q=a%20b%E2%80%A8")
    }))

  it.scopedLive("endSessionHint: \"logout_hint\" sends client_id and logout_hint, never the ID token", () =>
    Effect.gen(function*() {
      const harness = yield* Harness.make({ login: { endSessionHint: "logout_hint" } })
      const { browser } = yield* Harness.signIn(harness, "alice")
      const logout = yield* browser.fetch("/auth/logout", { method: "POST", headers: { origin: harness.url } })
      assert.strictEqual(logout.status, 303)
      const location = new URL(logout.headers.get("location")!)
      assert.strictEqual(location.searchParams.get("logout_hint"), "alice")
      assert.isNotEmpty(location.searchParams.get("client_id"))
      assert.isNull(location.searchParams.get("id_token_hint"))
    }))

  it.effect("the limits and the logout hint are read from Effect Config", () =>
    Effect.gen(function*() {
      const options = yield* OidcLogin.config().pipe(Effect.withConfigProvider(ConfigProvider.fromMap(
        new Map([
          ["OIDC_ISSUER", "https://login.example.com"],
          ["OIDC_CLIENT_ID", "web"],
          ["OIDC_BASE_URL", "https://app.example.com"],
          ["OIDC_END_SESSION_HINT", "logout_hint"],
          ["OIDC_SESSION_SWEEP_INTERVAL", "5 minutes"],
          ["OIDC_WEBSOCKET_MAX_MESSAGE_BYTES", "4096"],
          ["OIDC_WEBSOCKET_MAX_CONNECTIONS_PER_SESSION", "3"]
        ]),
        { pathDelim: "_" }
      )))
      assert.strictEqual(options.endSessionHint, "logout_hint")
      assert.deepStrictEqual(options.websocket, { maxMessageBytes: 4096, maxConnectionsPerSession: 3 })
      assert.isDefined(options.session?.sweepInterval)
    }))
})
