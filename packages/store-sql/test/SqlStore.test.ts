import { TokenEncryption, UserTokenStore } from "@effect-atm/core"
import { SqlStore } from "@effect-atm/store-sql"
import { UserTokenStoreSuite } from "@effect-atm/testing"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as Fs from "node:fs"
import * as Path from "node:path"
import {
  dropPgTablesAfter,
  encryption,
  freePort,
  keys,
  pgQuery,
  pgUrl,
  removeDirAfter,
  runId,
  sqliteQuery,
  tempDir
} from "../../../test/support/stores.js"

const { makeToken, uniqueUser } = UserTokenStoreSuite
const id = runId()
const suiteDir = tempDir("sql-suite")
const dir = tempDir("sql")
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))
const demo = { resource: "urn:effect-atm:demo-api" }

const pg = (prefix: string, options?: Partial<SqlStore.PgOptions>) =>
  SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: prefix, timeToLive: "1 hour", ...options }).pipe(
    Layer.provide(dropPgTablesAfter(prefix))
  )

UserTokenStoreSuite.run(
  "SQLite in memory",
  SqlStore.layerSqlite({ filename: ":memory:", timeToLive: "1 hour" }).pipe(
    Layer.provide(TokenEncryption.layerPlaintext)
  ),
  { clockExpiry: "1 hour" }
)

UserTokenStoreSuite.run(
  "SQLite file",
  SqlStore.layerSqlite({ filename: Path.join(suiteDir, "tokens.db"), timeToLive: "1 hour" }).pipe(
    Layer.provide([removeDirAfter(suiteDir), TokenEncryption.layerPlaintext])
  ),
  { clockExpiry: "1 hour" }
)

UserTokenStoreSuite.run(
  "PostgreSQL",
  pg(`t${id}_plain_`).pipe(Layer.provide(TokenEncryption.layerPlaintext)),
  { clockExpiry: "1 hour" }
)

UserTokenStoreSuite.run(
  "PostgreSQL, encrypted",
  pg(`t${id}_enc_`).pipe(Layer.provide(encryption({ key: { key: keys.a } }))),
  { clockExpiry: "1 hour" }
)

const secrets = ["at-secret", "rt-secret", "id-secret"]

/** Runs `f` with a store of its own, released afterwards. */
/** Runs `f` on a store; a store without encryption of its own stores plain JSON. */
const storeWith = <A, E, E2>(
  layer: Layer.Layer<UserTokenStore.UserTokenStore, E, TokenEncryption.TokenEncryption>,
  f: (store: UserTokenStore.UserTokenStore["Type"]) => Effect.Effect<A, E2>
) =>
  Effect.provide(Effect.flatMap(UserTokenStore.UserTokenStore, f), Layer.provide(layer, TokenEncryption.layerPlaintext))

/** Builds a store in the test's scope (plain JSON unless it has encryption of its own). */
const build = <E>(layer: Layer.Layer<UserTokenStore.UserTokenStore, E, TokenEncryption.TokenEncryption>) =>
  Effect.map(
    Layer.build(Layer.provide(layer, TokenEncryption.layerPlaintext)),
    Context.get(UserTokenStore.UserTokenStore)
  )

describe("SqlStore", () => {
  it.scoped("with encryption on, no row holds a token in plain text; every value names its key", () =>
    Effect.gen(function*() {
      const filename = Path.join(dir, "raw", "tokens.db")
      const prefix = `t${id}_raw_`
      const user = uniqueUser("raw")
      const key = yield* TokenEncryption.make({ key: { key: keys.a } })
      const plainPrefix = `t${id}_rawplain_`
      yield* Layer.build(Layer.merge(dropPgTablesAfter(prefix), dropPgTablesAfter(plainPrefix)))
      const layers = [
        SqlStore.layerSqlite({ filename }),
        SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: prefix })
      ].map((layer) => layer.pipe(Layer.provide(encryption({ key: { key: keys.a } }))))
      for (const layer of layers) {
        yield* storeWith(layer, (store) => store.store(user, makeToken("secret"), demo))
      }
      const rows = [
        ...yield* sqliteQuery<{ payload: string }>(filename, "SELECT payload FROM effect_atm_user_tokens"),
        ...yield* sqliteQuery<{ payload: string }>(filename, "SELECT payload FROM effect_atm_user_access_tokens"),
        ...yield* pgQuery<{ payload: string }>(`SELECT payload FROM ${prefix}user_tokens`),
        ...yield* pgQuery<{ payload: string }>(`SELECT payload FROM ${prefix}user_access_tokens`)
      ]
      assert.strictEqual(rows.length, 4)
      for (const { payload } of rows) {
        for (const secret of secrets) assert.notInclude(payload, secret)
        assert.isTrue(payload.startsWith(`atm1.${key.keyId}.`), "sealed with the current key, named beside it")
        assert.throws(() => JSON.parse(payload))
      }
      // without encryption the rows are plain JSON
      yield* storeWith(
        SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: plainPrefix }),
        (store) => store.store(user, makeToken("secret"), demo)
      )
      const [plain] = yield* pgQuery<{ payload: string }>(`SELECT payload FROM ${plainPrefix}user_access_tokens`)
      assert.strictEqual(JSON.parse(plain!.payload).accessToken, "at-secret")
    }))

  it.scoped("key rotation: old values stay readable under a previous key; new writes use the current one", () =>
    Effect.gen(function*() {
      const prefix = `t${id}_rotate_`
      const [before, after] = [uniqueUser("before"), uniqueUser("after")]
      const keyA = yield* TokenEncryption.make({ key: { key: keys.a } })
      const keyB = yield* TokenEncryption.make({ key: { key: keys.b } })
      yield* Layer.build(dropPgTablesAfter(prefix))
      const store = (keys_: TokenEncryption.Options) =>
        SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: prefix }).pipe(Layer.provide(encryption(keys_)))
      const keyIds = () => pgQuery<{ payload: string }>(`SELECT payload FROM ${prefix}user_tokens ORDER BY user_key`)

      yield* storeWith(store({ key: { key: keys.a } }), (s) => s.store(before, makeToken("before"), demo))
      yield* storeWith(store({ key: { key: keys.b }, previousKeys: [{ key: keys.a }] }), (s) =>
        Effect.gen(function*() {
          const read = Option.getOrThrow(yield* s.get(before, demo))
          assert.strictEqual(Redacted.value(read.refreshToken!), "rt-before")
          yield* s.store(after, makeToken("after"), demo)
        }))
      const sealed = (yield* keyIds()).map(({ payload }) => payload.split(".")[1])
      assert.sameMembers(sealed, [keyA.keyId, keyB.keyId])

      // once the old key is dropped from the configuration, its values fail as a typed error, never as garbage
      yield* storeWith(store({ key: { key: keys.b } }), (s) =>
        Effect.gen(function*() {
          assert.strictEqual(Redacted.value(Option.getOrThrow(yield* s.get(after, demo)).refreshToken!), "rt-after")
          const error = yield* Effect.flip(s.get(before, demo))
          assert.strictEqual(error._tag, "TokenStoreError")
          assert.include(error.message, keyA.keyId)
        }))
    }))

  it.scoped("a value that does not open is a TokenStoreError: tampered, moved to another user, or unencrypted", () =>
    Effect.gen(function*() {
      const prefix = `t${id}_tamper_`
      yield* Layer.build(dropPgTablesAfter(prefix))
      const encrypted = SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: prefix }).pipe(
        Layer.provide(encryption({ key: { key: keys.a } }))
      )
      const plain = SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: prefix })
      const [victim, attacker, tampered, legacy] = ["victim", "attacker", "tampered", "legacy"].map(uniqueUser)
      yield* storeWith(
        encrypted,
        (s) => Effect.forEach([victim, attacker, tampered], (user) => s.store(user!, makeToken(user!), demo))
      )
      yield* storeWith(plain, (s) => s.store(legacy!, makeToken("legacy"), demo))
      // the attacker's row gets the victim's sealed access token; another row gets one flipped character
      yield* pgQuery(
        `UPDATE ${prefix}user_access_tokens SET payload = (SELECT payload FROM ${prefix}user_access_tokens WHERE user_key = $1) WHERE user_key = $2`,
        [victim, attacker]
      )
      yield* pgQuery(
        `UPDATE ${prefix}user_tokens SET payload = overlay(payload placing (CASE WHEN substr(payload, 40, 1) = 'A' THEN 'B' ELSE 'A' END) from 40 for 1) WHERE user_key = $1`,
        [tampered]
      )
      yield* storeWith(encrypted, (s) =>
        Effect.gen(function*() {
          const reasons = yield* Effect.forEach([attacker, tampered, legacy], (user) =>
            Effect.map(Effect.flip(s.get(user!, demo)), (error) => {
              assert.strictEqual(error._tag, "TokenStoreError")
              return error.message
            }))
          assert.include(reasons[0], "failed authentication")
          assert.include(reasons[1], "failed authentication")
          assert.include(reasons[2], "not encrypted")
          assert.isTrue(Option.isSome(yield* s.get(victim!, demo)))
        }))
      // and a store without the key cannot read sealed values either
      const error = yield* storeWith(plain, (s) => Effect.flip(s.get(victim!, demo)))
      assert.include(error.message, "not configured")
    }))

  it.scoped("a failed write changes nothing: the rotated refresh token is not stored without its access token", () =>
    Effect.gen(function*() {
      const prefix = `t${id}_atomic_`
      const user = uniqueUser("atomic")
      yield* storeWith(pg(prefix), (store) =>
        Effect.gen(function*() {
          yield* store.store(user, makeToken("old"), demo)
          // from now on the access token row cannot be written: the transaction must roll back the user row too
          yield* pgQuery(
            `ALTER TABLE ${prefix}user_access_tokens ADD CONSTRAINT no_writes CHECK (payload = 'never') NOT VALID`
          )
          const error = yield* Effect.flip(store.store(user, makeToken("new"), demo))
          assert.strictEqual(error._tag, "TokenStoreError")
          assert.strictEqual(error.operation, "store")
          assert.notInclude(error.message, "at-new")
          const read = Option.getOrThrow(yield* store.get(user, demo))
          assert.strictEqual(Redacted.value(read.refreshToken!), "rt-old")
          assert.strictEqual(Redacted.value(read.accessToken!.accessToken), "at-old")
        }))
    }))

  it.scoped("instances starting together create the tables once and share them", () =>
    Effect.gen(function*() {
      const prefix = `t${id}_race_`
      yield* Layer.build(dropPgTablesAfter(prefix))
      const user = uniqueUser("race")
      const layer = SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: prefix })
      const [first, second] = yield* Effect.all(Array.from({ length: 4 }, () => build(layer)), { concurrency: 4 })
      yield* first!.store(user, makeToken("shared"), demo)
      assert.strictEqual(Redacted.value(Option.getOrThrow(yield* second!.get(user, demo)).refreshToken!), "rt-shared")
    }))

  it.scoped("two stores on one SQLite file see each other's writes", () =>
    Effect.gen(function*() {
      const filename = Path.join(dir, "shared", "tokens.db")
      const user = uniqueUser("file")
      const layer = SqlStore.layerSqlite({ filename })
      const [one, two] = yield* Effect.all([build(layer), build(layer)])
      yield* one.store(user, makeToken("file"), demo)
      const read = yield* two.get(user, demo)
      assert.strictEqual(Redacted.value(Option.getOrThrow(read).accessToken!.accessToken), "at-file")
    }))

  it.scoped("rows past their time to live are purged in the background", () =>
    Effect.gen(function*() {
      const filename = Path.join(dir, "purge", "tokens.db")
      const store = yield* build(SqlStore.layerSqlite({ filename, timeToLive: "1 hour", purgeInterval: "10 minutes" }))
      yield* store.store(uniqueUser("purge-old"), makeToken("old"), demo)
      yield* TestClock.adjust("50 minutes")
      yield* store.store(uniqueUser("purge-new"), makeToken("new"), demo)
      const count = (table: string) =>
        Effect.map(sqliteQuery<{ n: number }>(filename, `SELECT count(*) AS n FROM ${table}`), (rows) => rows[0]!.n)
      assert.strictEqual(yield* count("effect_atm_user_tokens"), 2)
      yield* TestClock.adjust("20 minutes")
      assert.strictEqual(yield* count("effect_atm_user_tokens"), 1)
      assert.strictEqual(yield* count("effect_atm_user_access_tokens"), 1)
    }))

  it.scoped("layerConfig picks SQLite or PostgreSQL from TOKEN_STORE_URL", () =>
    Effect.gen(function*() {
      const prefix = `t${id}_config_`
      yield* Layer.build(dropPgTablesAfter(prefix))
      const user = uniqueUser("config")
      const withConfig = (env: Record<string, string>) =>
        SqlStore.layerConfig().pipe(
          Layer.provide(
            Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))
          )
        )
      for (
        const env of [
          { TOKEN_STORE_URL: "sqlite::memory:" },
          { TOKEN_STORE_URL: `sqlite:${Path.join(dir, "config", "tokens.db")}`, TOKEN_STORE_TIME_TO_LIVE: "2 days" },
          { TOKEN_STORE_URL: pgUrl, TOKEN_STORE_TABLE_PREFIX: prefix }
        ]
      ) {
        yield* storeWith(withConfig(env), (store) =>
          Effect.gen(function*() {
            yield* store.store(user, makeToken("config"), demo)
            assert.isTrue(Option.isSome(yield* store.get(user, demo)))
          }))
      }
      assert.strictEqual((yield* pgQuery(`SELECT user_key FROM ${prefix}user_tokens`)).length, 1)
      const invalid = yield* Effect.exit(
        storeWith(withConfig({ TOKEN_STORE_URL: "mysql://somewhere" }), () => Effect.void)
      )
      assert.isTrue(Exit.isFailure(invalid))
      const badPrefix = yield* Effect.flip(
        storeWith(
          withConfig({ TOKEN_STORE_URL: "sqlite::memory:", TOKEN_STORE_TABLE_PREFIX: "x; drop" }),
          () => Effect.void
        )
      )
      assert.include(String(badPrefix), "table prefix")
    }))

  it.live("an unreachable database fails the layer with a TokenStoreError, promptly", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      const started = Date.now()
      const error = yield* Effect.flip(
        storeWith(
          SqlStore.layerPg({
            url: Redacted.make(`postgres://postgres@127.0.0.1:${port}/test`),
            connectTimeout: "1 second"
          }),
          () => Effect.void
        )
      )
      assert.strictEqual(error._tag, "TokenStoreError")
      assert.strictEqual((error as { operation?: string }).operation, "connect")
      assert.isBelow(Date.now() - started, 3_000)
      const file = yield* Effect.flip(storeWith(SqlStore.layerSqlite({ filename: dir }), () => Effect.void))
      assert.strictEqual(file._tag, "TokenStoreError")
    }))
})
