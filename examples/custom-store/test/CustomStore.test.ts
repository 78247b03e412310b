/**
 * The example store runs the conformance suite every store of this repository runs, as your own store would in
 * your own project: `npm i -D @effect-atm/testing`, then one call per configuration.
 */
import { TokenEncryption, UserTokenStore } from "@effect-atm/core"
import { UserTokenStoreSuite } from "@effect-atm/testing"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as CustomStore from "../src/CustomStore.js"

const { makeToken, uniqueUser } = UserTokenStoreSuite
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-atm-custom-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const store = (file: string) =>
  CustomStore.layer({ path: Path.join(dir, file), timeToLive: "1 hour" }).pipe(Layer.provide(NodeFileSystem.layer))

const encryption = TokenEncryption.layer({
  key: { key: Redacted.make(Buffer.alloc(32, 0xa1).toString("base64")) }
}).pipe(Layer.orDie)

UserTokenStoreSuite.run("custom JSON file store (example)", store("plain.json"), { clockExpiry: "1 hour" })

UserTokenStoreSuite.run(
  "custom JSON file store (example), encrypted",
  store("encrypted.json").pipe(Layer.provide(encryption)),
  { clockExpiry: "1 hour" }
)

describe("custom JSON file store (example)", () => {
  it.effect("tokens survive a restart; a file that is not JSON is a TokenStoreError", () =>
    Effect.gen(function*() {
      const user = uniqueUser("restart")
      const demo = { resource: "urn:effect-atm:demo-api" }
      const layer = store("restart.json").pipe(Layer.provide(encryption))
      yield* Effect.provide(
        Effect.flatMap(UserTokenStore.UserTokenStore, (s) => s.store(user, makeToken("r"), demo)),
        layer
      )
      const read = yield* Effect.provide(Effect.flatMap(UserTokenStore.UserTokenStore, (s) => s.get(user, demo)), layer)
      assert.strictEqual(Redacted.value(Option.getOrThrow(read).refreshToken!), "rt-r")
      assert.notInclude(Fs.readFileSync(Path.join(dir, "restart.json"), "utf8"), "rt-r")

      Fs.writeFileSync(Path.join(dir, "broken.json"), "{ half a file")
      const error = yield* Effect.flip(Effect.provide(UserTokenStore.UserTokenStore, store("broken.json")))
      assert.strictEqual(error._tag, "TokenStoreError")
    }))
})
