/**
 * The custom JSON-file store at work: a user's tokens survive a restart of the application, they are encrypted
 * in the file, and the store plugs into the token management like any other.
 *
 * Run: `npx tsx examples/custom-store/src/main.ts` (set TOKEN_ENCRYPTION_KEY to a base64 32-byte key to use
 * your own; otherwise a key is made up for this run).
 */
import { AccessToken, CurrentUser, TokenEncryption, UserToken, UserTokenStore } from "@effect-atm/core"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as CustomStore from "./CustomStore.js"

const program = Effect.gen(function*() {
  const key = yield* Config.redacted("TOKEN_ENCRYPTION_KEY").pipe(
    Config.withDefault(TokenEncryption.generateKey())
  )
  const path = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-atm-custom-store-")), "tokens.json")
  // what the application provides: the store, with encryption at rest
  const StoreLive = CustomStore.layer({ path }).pipe(
    Layer.provide(TokenEncryption.layer({ key: { key } })),
    Layer.provide(NodeFileSystem.layer)
  )

  const user = CurrentUser.storeKey(new CurrentUser.User({ subject: "alice", sessionId: "browser-1" }))
  const params = { resource: "https://api.example.com" }
  const now = Date.now()
  const token = new UserToken.UserToken({
    clientId: "web",
    refreshToken: Redacted.make("refresh-token-of-alice"),
    accessToken: new AccessToken.AccessToken({
      accessToken: Redacted.make("access-token-of-alice"),
      tokenType: "Bearer",
      issuedAt: now,
      expiresAt: now + 300_000,
      resource: params.resource
    })
  })

  // first run of the application: the login stores alice's tokens (OidcEvents.tokenValidated does this)
  yield* Effect.flatMap(UserTokenStore.UserTokenStore, (store) => store.store(user, token, params)).pipe(
    Effect.provide(StoreLive)
  )
  yield* Console.log(`stored alice's tokens in ${path}`)
  const file = Fs.readFileSync(path, "utf8")
  const plain = file.includes("refresh-token-of-alice") || file.includes("access-token-of-alice")
  yield* Console.log(`tokens readable in the file: ${plain ? "yes" : "no, they are encrypted"}`)

  // second run: a new store over the same file finds them
  const read = yield* Effect.flatMap(UserTokenStore.UserTokenStore, (store) => store.get(user, params)).pipe(
    Effect.provide(StoreLive)
  )
  const restored = Option.getOrThrow(read)
  yield* Console.log(
    `after a restart: access token for ${restored.accessToken?.resource}, expires ` +
      `${new Date(restored.accessToken!.expiresAt).toISOString()}; refresh token ${restored.refreshToken}` +
      " (Redacted: it never prints)"
  )
  // plug it in: AccessTokenManagement.layerServer({ client, resource }).pipe(Layer.provide(StoreLive))
  Fs.rmSync(Path.dirname(path), { recursive: true, force: true })
})

Effect.runPromise(program).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
