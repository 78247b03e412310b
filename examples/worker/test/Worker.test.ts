/**
 * The worker example switched to private_key_jwt and DPoP by configuration alone: its own `main` over its own
 * layer, with the environment given as an Effect `ConfigProvider`, against the embedded provider and demo API.
 */
import { IdentityProvider } from "@effect-atm/dev-identity"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Worker from "../src/Worker.js"

const run = (env: Record<string, string>) =>
  Worker.main.pipe(
    Effect.provide(Worker.layer),
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))
  )

describe("worker example", () => {
  it.live("WORKER_DEMO_AUTHENTICATION=private_key_jwt WORKER_DEMO_DPOP=true: signed assertions, DPoP-bound calls", () =>
    Effect.gen(function*() {
      const { echoes, tokenRequests } = yield* run({
        WORKER_CALLS: "3",
        WORKER_INTERVAL: "1 millis",
        WORKER_DEMO_AUTHENTICATION: "private_key_jwt",
        WORKER_DEMO_DPOP: "true"
      })
      assert.strictEqual(echoes.length, 3)
      for (const echo of echoes) {
        assert.strictEqual(echo.client_id, IdentityProvider.Clients.machinePrivateKeyJwt.clientId)
        // the API saw a DPoP-bound token (it refuses one without a valid proof for the call)
        assert.isString(echo.cnf?.jkt)
      }
      assert.strictEqual(new Set(echoes.map((echo) => echo.cnf?.jkt)).size, 1, "one proof key for the worker")
      // every token request the provider saw carried a client assertion and a DPoP proof
      assert.isAtLeast(tokenRequests!.total, 1)
      assert.strictEqual(tokenRequests!.withClientAssertion, tokenRequests!.total)
      assert.strictEqual(tokenRequests!.withDPoP, tokenRequests!.total)
    }))

  it.live("by default: client_secret_basic and bearer tokens", () =>
    Effect.gen(function*() {
      const { echoes, tokenRequests } = yield* run({ WORKER_CALLS: "1" })
      assert.strictEqual(echoes[0]!.client_id, IdentityProvider.Clients.machineBasic.clientId)
      assert.isUndefined(echoes[0]!.cnf)
      assert.deepStrictEqual(tokenRequests, { total: 1, withClientAssertion: 0, withDPoP: 0 })
    }))
})
