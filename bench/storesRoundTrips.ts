/**
 * P7: `get` and `store` of one user token on SQLite (a file), PostgreSQL and Redis, encryption off and on, each
 * beside the raw driver doing the same statements with the same payload (pre-encoded), in the same run, interleaved
 * in rounds. Besides the ratio, each row's data says where the difference goes: the same statements through Effect
 * (`@effect/sql`, or an ioredis promise in `Effect.tryPromise`), the codec (Schema encode/decode and JSON,
 * encryption), span recording, and the rest. Redis also has issue 5's simplest baseline (HGETALL; one HSET).
 */
import { AccessToken, TokenEncryption, UserToken, type UserTokenStore } from "@effect-atm/core"
import { RedisConnection, RedisStore } from "@effect-atm/store-redis"
import { SqlStore } from "@effect-atm/store-sql"
import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { Redis } from "ioredis"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { pgUrl, rawRedis, redisKeys, redisUrl, runId, tempDir } from "../test/support/stores.js"
import { params, rawSecrets, userToken } from "./storesTokens.js"
import { median, now, type Row } from "./support.js"

// The drivers themselves (their types are not installed: the few calls used here are typed by hand)
const require = createRequire(import.meta.url)

interface SqliteStatement {
  get(...values: Array<unknown>): unknown
  run(...values: Array<unknown>): unknown
}
interface SqliteDatabase {
  prepare(sql: string): SqliteStatement
  transaction<A extends Array<unknown>>(f: (...args: A) => void): (...args: A) => void
  pragma(source: string): unknown
  close(): void
}
const Sqlite = require("better-sqlite3") as new(filename: string) => SqliteDatabase

interface PgResult {
  readonly rows: Array<Record<string, unknown>>
}
interface PgPoolClient {
  query(text: string, values?: Array<unknown>): Promise<PgResult>
  release(): void
}
interface PgPool {
  query(text: string, values?: Array<unknown>): Promise<PgResult>
  connect(): Promise<PgPoolClient>
  end(): Promise<void>
}
const Pg = require("pg") as { Pool: new(config: { connectionString: string }) => PgPool }

const rounds = 16
const batch = 25
const goal = 1.2
const timeToLive = 14 * 24 * 3600 * 1000
const paramsKey = AccessToken.parametersKey(params)
// the contexts the stores bind sealed values to (internal to the stores, repeated here to decode their payloads)
const userContext = (user: string) => `user\u001d${user}`
const accessContext = (user: string) => `access\u001d${user}\u001d${paramsKey}`

// Sampling

/** Runs `n` operations, pushing each one's latency (ms). Effects are built per call, as callers do. */
type Sampler = (n: number, into: Array<number>) => Effect.Effect<void>

const effectSampler = (op: Effect.Effect<unknown, unknown>): Sampler => (n, into) =>
  Effect.gen(function*() {
    for (let i = 0; i < n; i++) {
      const start = now()
      yield* op
      into.push(now() - start)
    }
  }).pipe(Effect.orDie)

const promiseSampler = (op: () => Promise<unknown>): Sampler => (n, into) =>
  Effect.promise(async () => {
    for (let i = 0; i < n; i++) {
      const start = now()
      await op()
      into.push(now() - start)
    }
  })

const syncSampler = (op: () => unknown): Sampler => (n, into) =>
  Effect.sync(() => {
    for (let i = 0; i < n; i++) {
      const start = now()
      op()
      into.push(now() - start)
    }
  })

/** Median latency (µs) of each sampler, run in rounds whose order rotates so that drift in load hits all alike. */
const interleave = (samplers: Readonly<Record<string, Sampler>>) =>
  Effect.gen(function*() {
    const names = Object.keys(samplers)
    const samples: Record<string, Array<number>> = Object.fromEntries(names.map((name) => [name, []]))
    for (const name of names) yield* samplers[name]!(batch, []) // warm up (JIT, prepared statements, connections)
    for (let round = 0; round < rounds; round++) {
      for (let j = 0; j < names.length; j++) {
        const name = names[(round + j) % names.length]!
        yield* samplers[name]!(batch, samples[name]!)
      }
    }
    const medians: Record<string, number> = Object.fromEntries(
      names.map((name) => [name, median(samples[name]!) * 1000])
    )
    return medians
  })

// What the store does besides the round trip, and its payload

const payloadFor = (encryption: TokenEncryption.TokenEncryption["Type"] | undefined) =>
  Effect.gen(function*() {
    const token = userToken(rawSecrets(), Date.now())
    const userCodec = TokenEncryption.codec(UserToken.UserToken, encryption)
    const accessCodec = TokenEncryption.codec(AccessToken.AccessToken, encryption)
    // how the stores split a token into its shared part and access token, and join them back
    const shared = UserToken.shared(token)
    /** The strings stored for `user`: what the store writes (sealed for `user` when encrypting). */
    const encodedFor = (user: string) =>
      Effect.all([
        userCodec.encode(UserToken.shared(token), userContext(user)),
        accessCodec.encode(token.accessToken!, accessContext(user))
      ])
    // the plain JSON of both parts, for the encryption alone
    const [userPlain, accessPlain] = yield* Effect.all([
      TokenEncryption.codec(UserToken.UserToken, undefined).encode(shared, ""),
      TokenEncryption.codec(AccessToken.AccessToken, undefined).encode(token.accessToken!, "")
    ])
    /** The store's CPU-only steps, as samplers (run in the same rounds as the round trips). */
    const steps = (user: string) =>
      Effect.map(encodedFor(user), ([sharedStored, accessStored]) => ({
        get: {
          // decode both values (decrypt, JSON.parse, Schema decode)
          codec: effectSampler(Effect.all([
            userCodec.decode(sharedStored, userContext(user)),
            accessCodec.decode(accessStored, accessContext(user))
          ])),
          // the UserToken `get` returns
          userToken: syncSampler(() => UserToken.withAccessToken(shared, token.accessToken)),
          ...(encryption === undefined ? {} : {
            crypto: effectSampler(Effect.all([
              encryption.decrypt(sharedStored, userContext(user)),
              encryption.decrypt(accessStored, accessContext(user))
            ]))
          })
        } as Record<string, Sampler>,
        store: {
          // encode both values (Schema encode, JSON.stringify, encrypt)
          codec: effectSampler(encodedFor(user)),
          // the shared part of the token `store` writes
          userToken: syncSampler(() => UserToken.shared(token)),
          ...(encryption === undefined ? {} : {
            crypto: effectSampler(Effect.all([
              encryption.encrypt(userPlain, userContext(user)),
              encryption.encrypt(accessPlain, accessContext(user))
            ]))
          })
        } as Record<string, Sampler>
      }))
    return { token, encodedFor, steps }
  })

type Payload = Effect.Effect.Success<ReturnType<typeof payloadFor>>

interface Variant {
  /** the store under test */
  readonly store: UserTokenStore.UserTokenStore["Type"]
  readonly storeUser: string
  readonly encrypted: boolean
  readonly payload: Payload
}

/** The raw and Effect-wrapped drivers of one backend, for a user whose rows hold `shared` and `access`. */
interface Baselines {
  readonly label: string
  readonly raw: string
  readonly get: (user: string) => { readonly raw: Sampler; readonly effect: Sampler; readonly minimal?: Sampler }
  readonly store: (user: string, shared: string, access: string) => {
    readonly raw: Sampler
    readonly effect: Sampler
    readonly minimal?: Sampler
  }
}

const us = (value: number) => value >= 100 ? value.toFixed(0) : value.toFixed(1)

const measure = (backend: Baselines, variant: Variant) =>
  Effect.gen(function*() {
    const { encrypted, payload, store, storeUser } = variant
    const tag = encrypted ? "enc" : "plain"
    const [shared, access] = yield* payload.encodedFor(storeUser)
    yield* store.store(storeUser, payload.token, params)
    const found = yield* store.get(storeUser, params)
    if (Option.isNone(found) || found.value.accessToken === undefined) {
      return yield* Effect.dieMessage(`${backend.label}: the stored token did not come back`)
    }
    if (Redacted.value(found.value.refreshToken!) !== Redacted.value(payload.token.refreshToken!)) {
      return yield* Effect.dieMessage(`${backend.label}: a different token came back`)
    }
    const steps = yield* payload.steps(storeUser)

    // each baseline reads the rows the store wrote, and writes rows of its own with the same payload
    const getBaselines = backend.get(storeUser)
    const get = yield* interleave({
      store: effectSampler(Effect.suspend(() => store.get(storeUser, params))),
      untraced: effectSampler(Effect.suspend(() => Effect.withTracerEnabled(store.get(storeUser, params), false))),
      raw: getBaselines.raw,
      effect: getBaselines.effect,
      ...(getBaselines.minimal === undefined ? {} : { minimal: getBaselines.minimal }),
      ...steps.get
    })
    const rawStore = backend.store(`raw-${tag}`, shared, access)
    const effectStore = backend.store(`effect-${tag}`, shared, access)
    const put = yield* interleave({
      store: effectSampler(Effect.suspend(() => store.store(storeUser, payload.token, params))),
      untraced: effectSampler(
        Effect.suspend(() => Effect.withTracerEnabled(store.store(storeUser, payload.token, params), false))
      ),
      raw: rawStore.raw,
      effect: effectStore.effect,
      ...(rawStore.minimal === undefined ? {} : { minimal: rawStore.minimal }),
      ...steps.store
    })
    const row = (operation: "get" | "store", m: Record<string, number>): Row => {
      const ratio = m.store! / m.raw!
      return {
        id: "P7",
        what: `${backend.label} ${operation}, encryption ${encrypted ? "on" : "off"} (median)`,
        value: `${us(m.store!)} µs`,
        baseline: `${us(m.raw!)} µs ${backend.raw}`,
        ratio,
        goal: `ratio ≤ ${goal}`,
        met: ratio <= goal,
        data: {
          backend: backend.label,
          operation,
          encryption: encrypted,
          storeMedianUs: m.store,
          rawMedianUs: m.raw,
          ...(m.minimal === undefined ? {} : { rawMinimalMedianUs: m.minimal }),
          // the same statements through Effect (@effect/sql; ioredis in Effect.tryPromise): Effect + client cost
          effectDriverMedianUs: m.effect,
          // the store's operation with the tracer off: spans are not recorded, but `withSpan` still captures its
          // stack trace and sets up the span context, which is most of its cost
          storeUntracedMedianUs: m.untraced,
          // the store's CPU-only steps, alone (median µs per operation)
          codecUs: m.codec,
          ...(m.crypto === undefined ? {} : { cryptoUs: m.crypto }),
          // UserToken.shared (store) or UserToken.withAccessToken (get)
          userTokenUs: m.userToken,
          // store − raw, split: Effect and the SQL/Redis client, codec (with crypto), span recording, and the rest
          // (withSpan's stack trace and context, Effect.gen, Clock, retry, error mapping, the UserToken; it also
          // takes the error of the others: the parts run alone in tight loops, faster than inside the store)
          overheadUs: m.store! - m.raw!,
          overheadSplitUs: {
            effectClient: m.effect! - m.raw!,
            codec: m.codec,
            spanRecording: m.store! - m.untraced!,
            rest: m.untraced! - m.effect! - m.codec!
          },
          samplesPerVariant: rounds * batch
        }
      }
    }
    return [row("get", get), row("store", put)] satisfies Array<Row> as ReadonlyArray<Row>
  })

const encryptionService = TokenEncryption.make({ key: { key: TokenEncryption.generateKey() } }).pipe(Effect.orDie)

/** Runs `get` and `store` over a backend with encryption off and on. */
const measureBoth = <R>(
  backend: Baselines,
  makeStore: (
    encryption: TokenEncryption.TokenEncryption["Type"] | undefined
  ) => Effect.Effect<UserTokenStore.UserTokenStore["Type"], unknown, R>
) =>
  Effect.gen(function*() {
    const encryption = yield* encryptionService
    const rows: Array<Row> = []
    for (const enc of [undefined, encryption]) {
      const store = yield* makeStore(enc)
      rows.push(
        ...(yield* measure(backend, {
          store,
          storeUser: `store-${enc === undefined ? "plain" : "enc"}`,
          encrypted: enc !== undefined,
          payload: yield* payloadFor(enc)
        }))
      )
    }
    return rows
  })

// SQL: the statements of the store (`packages/store-sql/src/internal/sqlStore.ts`), same tables

const sqlStatements = (prefix: string, placeholder: (i: number) => string) => {
  const users = `${prefix}user_tokens`
  const accessTokens = `${prefix}user_access_tokens`
  const p = placeholder
  return {
    users,
    accessTokens,
    get: `SELECT u.payload AS userpayload, a.payload AS accesspayload
      FROM ${users} u LEFT JOIN ${accessTokens} a ON a.user_key = u.user_key AND a.params_key = ${p(1)}
      WHERE u.user_key = ${p(2)} AND u.expires_at > ${p(3)}`,
    sqliteDeleteExpired: `DELETE FROM ${accessTokens} WHERE user_key = ${p(1)} AND EXISTS (
      SELECT 1 FROM ${users} WHERE user_key = ${p(2)} AND expires_at <= ${p(3)})`,
    pgLockUser: `SELECT expires_at FROM ${users} WHERE user_key = ${p(1)} FOR UPDATE`,
    upsertUser: `INSERT INTO ${users} (user_key, payload, expires_at, updated_at)
      VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})
      ON CONFLICT (user_key) DO UPDATE SET payload = excluded.payload,
        expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
    upsertAccess: `INSERT INTO ${accessTokens} (user_key, params_key, payload)
      VALUES (${p(1)}, ${p(2)}, ${p(3)})
      ON CONFLICT (user_key, params_key) DO UPDATE SET payload = excluded.payload`
  }
}

const sqlite = Effect.gen(function*() {
  const dir = tempDir("bench")
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
  const filename = Path.join(dir, "tokens.db")
  const prefix = `bench_${runId()}_`
  const sql = yield* SqliteClient.make({ filename }).pipe(Effect.provide(Reactivity.layer))
  // the store's tables first (created by the store), then the raw connection on the same file
  const plainStore = yield* SqlStore.make({ tablePrefix: prefix }).pipe(
    Effect.provideService(SqlClient.SqlClient, sql),
    Effect.provideService(TokenEncryption.TokenEncryption, TokenEncryption.plaintext)
  )
  const db = yield* Effect.acquireRelease(
    Effect.sync(() => new Sqlite(filename)),
    (db) => Effect.sync(() => db.close())
  )
  db.pragma("journal_mode = WAL")
  const statements = sqlStatements(prefix, () => "?")
  const select = db.prepare(statements.get)
  const deleteExpired = db.prepare(statements.sqliteDeleteExpired)
  const upsertUser = db.prepare(statements.upsertUser)
  const upsertAccess = db.prepare(statements.upsertAccess)
  const write = db.transaction((user: string, shared: string, access: string, at: number) => {
    deleteExpired.run(user, user, at)
    upsertUser.run(user, shared, at + timeToLive, at)
    upsertAccess.run(user, paramsKey, access)
  })
  const users = sql(statements.users)
  const accessTokens = sql(statements.accessTokens)
  const backend: Baselines = {
    label: "SQLite (file)",
    raw: "better-sqlite3",
    get: (user) => ({
      raw: syncSampler(() => {
        if (select.get(paramsKey, user, Date.now()) === undefined) throw new Error("no row")
      }),
      effect: effectSampler(Effect.suspend(() =>
        sql`SELECT u.payload AS userpayload, a.payload AS accesspayload
          FROM ${users} u LEFT JOIN ${accessTokens} a ON a.user_key = u.user_key AND a.params_key = ${paramsKey}
          WHERE u.user_key = ${user} AND u.expires_at > ${Date.now()}`
      ))
    }),
    store: (user, shared, access) => ({
      raw: syncSampler(() => write(user, shared, access, Date.now())),
      effect: effectSampler(Effect.suspend(() => {
        const at = Date.now()
        return sql.withTransaction(Effect.gen(function*() {
          yield* sql`DELETE FROM ${accessTokens} WHERE user_key = ${user} AND EXISTS (
            SELECT 1 FROM ${users} WHERE user_key = ${user} AND expires_at <= ${at})`
          yield* sql`INSERT INTO ${users} (user_key, payload, expires_at, updated_at)
            VALUES (${user}, ${shared}, ${at + timeToLive}, ${at})
            ON CONFLICT (user_key) DO UPDATE SET payload = excluded.payload,
              expires_at = excluded.expires_at, updated_at = excluded.updated_at`
          yield* sql`INSERT INTO ${accessTokens} (user_key, params_key, payload)
            VALUES (${user}, ${paramsKey}, ${access})
            ON CONFLICT (user_key, params_key) DO UPDATE SET payload = excluded.payload`
        }))
      }))
    })
  }
  return yield* measureBoth(backend, (encryption) =>
    encryption === undefined
      ? Effect.succeed(plainStore)
      : SqlStore.make({ tablePrefix: prefix }).pipe(
        Effect.provideService(TokenEncryption.TokenEncryption, encryption)
      )).pipe(Effect.provideService(SqlClient.SqlClient, sql))
}).pipe(Effect.scoped)

const postgres = Effect.gen(function*() {
  const prefix = `bench_${runId()}_`
  const sql = yield* PgClient.make({ url: Redacted.make(pgUrl) }).pipe(Effect.provide(Reactivity.layer))
  const statements = sqlStatements(prefix, (i) => `$${i}`)
  // released before the client closes (finalizers run in reverse)
  yield* Effect.addFinalizer(() =>
    sql.unsafe(`DROP TABLE IF EXISTS ${statements.users}, ${statements.accessTokens}`).pipe(Effect.ignore)
  )
  const plainStore = yield* SqlStore.make({ tablePrefix: prefix }).pipe(
    Effect.provideService(SqlClient.SqlClient, sql),
    Effect.provideService(TokenEncryption.TokenEncryption, TokenEncryption.plaintext)
  )
  const pool = yield* Effect.acquireRelease(
    Effect.sync(() => new Pg.Pool({ connectionString: pgUrl })),
    (pool) => Effect.promise(() => pool.end())
  )
  const users = sql(statements.users)
  const accessTokens = sql(statements.accessTokens)
  const backend: Baselines = {
    label: "PostgreSQL",
    raw: "pg Pool",
    get: (user) => ({
      raw: promiseSampler(async () => {
        const result = await pool.query(statements.get, [paramsKey, user, Date.now()])
        if (result.rows.length === 0) throw new Error("no row")
      }),
      effect: effectSampler(Effect.suspend(() =>
        sql`SELECT u.payload AS userpayload, a.payload AS accesspayload
          FROM ${users} u LEFT JOIN ${accessTokens} a ON a.user_key = u.user_key AND a.params_key = ${paramsKey}
          WHERE u.user_key = ${user} AND u.expires_at > ${Date.now()}`
      ))
    }),
    store: (user, shared, access) => ({
      raw: promiseSampler(async () => {
        const at = Date.now()
        const client = await pool.connect()
        try {
          await client.query("BEGIN")
          const previous = await client.query(statements.pgLockUser, [user])
          if (previous.rows.length > 0 && Number(previous.rows[0]!.expires_at) <= at) {
            await client.query(`DELETE FROM ${statements.accessTokens} WHERE user_key = $1`, [user])
          }
          await client.query(statements.upsertUser, [user, shared, at + timeToLive, at])
          await client.query(statements.upsertAccess, [user, paramsKey, access])
          await client.query("COMMIT")
        } catch (error) {
          await client.query("ROLLBACK")
          throw error
        } finally {
          client.release()
        }
      }),
      effect: effectSampler(Effect.suspend(() => {
        const at = Date.now()
        return sql.withTransaction(Effect.gen(function*() {
          const previous = yield* sql<{ expires_at: unknown }>`SELECT expires_at FROM ${users}
            WHERE user_key = ${user} FOR UPDATE`
          if (previous.length > 0 && Number(previous[0]!.expires_at) <= at) {
            yield* sql`DELETE FROM ${accessTokens} WHERE user_key = ${user}`
          }
          yield* sql`INSERT INTO ${users} (user_key, payload, expires_at, updated_at)
            VALUES (${user}, ${shared}, ${at + timeToLive}, ${at})
            ON CONFLICT (user_key) DO UPDATE SET payload = excluded.payload,
              expires_at = excluded.expires_at, updated_at = excluded.updated_at`
          yield* sql`INSERT INTO ${accessTokens} (user_key, params_key, payload)
            VALUES (${user}, ${paramsKey}, ${access})
            ON CONFLICT (user_key, params_key) DO UPDATE SET payload = excluded.payload`
        }))
      }))
    })
  }
  return yield* measureBoth(backend, (encryption) =>
    encryption === undefined
      ? Effect.succeed(plainStore)
      : SqlStore.make({ tablePrefix: prefix }).pipe(
        Effect.provideService(TokenEncryption.TokenEncryption, encryption)
      )).pipe(Effect.provideService(SqlClient.SqlClient, sql))
}).pipe(Effect.scoped)

// Redis: the commands of the store (`packages/store-redis/src/internal/redis.ts`), same key layout

const redis = Effect.gen(function*() {
  const prefix = `bench:${runId()}:`
  const raw: Redis = yield* rawRedis()
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(
      redisKeys(raw, prefix),
      (keys) => keys.length === 0 ? Effect.void : Effect.promise(() => raw.del(...keys))
    ).pipe(Effect.ignore)
  )
  const connection = yield* RedisConnection.make({ url: redisUrl })
  const keyOf = (user: string) => `${prefix}user:${user}`
  const sharedField = "_"
  const accessField = `a:${paramsKey}`
  const backend: Baselines = {
    label: "Redis",
    raw: "ioredis HMGET/MULTI",
    get: (user) => ({
      raw: promiseSampler(async () => {
        const [shared] = await raw.hmget(keyOf(user), sharedField, accessField)
        if (shared === null) throw new Error("no entry")
      }),
      effect: effectSampler(
        Effect.suspend(() => Effect.tryPromise(() => raw.hmget(keyOf(user), sharedField, accessField)))
      ),
      // as in issue 5: HGETALL of the same fields
      minimal: promiseSampler(() => raw.hgetall(keyOf(user)))
    }),
    store: (user, shared, access) => ({
      raw: promiseSampler(() =>
        raw.multi().hset(keyOf(user), sharedField, shared, accessField, access).pexpire(keyOf(user), timeToLive)
          .exec()
      ),
      effect: effectSampler(
        Effect.tryPromise(() =>
          raw.multi().hset(keyOf(user), sharedField, shared, accessField, access).pexpire(keyOf(user), timeToLive)
            .exec()
        )
      ),
      // as in issue 5: one HSET of the same fields (no transaction, no expiry)
      minimal: promiseSampler(() => raw.hset(keyOf(`${user}-hset`), sharedField, shared, accessField, access))
    })
  }
  return yield* measureBoth(backend, (encryption) =>
    RedisStore.makeUserTokenStore({ prefix }).pipe(
      Effect.provideService(RedisConnection.RedisConnection, connection),
      Effect.provideService(TokenEncryption.TokenEncryption, encryption ?? TokenEncryption.plaintext)
    ))
}).pipe(Effect.scoped)

export const run = Effect.gen(function*() {
  const rows: Array<Row> = []
  for (const backend of [sqlite, postgres, redis]) rows.push(...(yield* backend))
  return rows as ReadonlyArray<Row>
})
