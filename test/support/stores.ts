import { TokenEncryption, TokenEndpoint, UserTokens } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { RedisStore } from "@effect-atm/store-redis"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { Redis } from "ioredis"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

/** Distinguishes this run's tables and keys from those of runs in parallel. */
export const runId = () =>
  `${process.pid.toString(36)}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`

export const pgUrl = "postgres://postgres@127.0.0.1:5432/test"
export const redisUrl = "redis://127.0.0.1:6379"

/** A fixed pair of keys (each 32 bytes, base64) for tests that need to know them. */
export const keys = {
  a: Redacted.make(Buffer.alloc(32, 0xa1).toString("base64")),
  b: Redacted.make(Buffer.alloc(32, 0xb2).toString("base64"))
}

export const encryption = (options: TokenEncryption.Options) => TokenEncryption.layer(options).pipe(Layer.orDie)

/** Runs one query on a connection of its own, outside the store. */
export const pgQuery = <A extends object = Record<string, unknown>>(text: string, values: Array<unknown> = []) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text, values)).pipe(
    Effect.provide(PgClient.layer({ url: Redacted.make(pgUrl) })),
    Effect.orDie
  )

/**
 * Runs `read` while another session locks `table`, and ends the read's session (`pg_terminate_backend`, as a
 * failover or an administrator does) while it waits there; then lets the lock go. Returns the read's outcome and
 * whether the ended session is really gone.
 */
export const readWithSessionEnded = <A, E>(table: string, read: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const locked = yield* Deferred.make<number>()
    const unlock = yield* Deferred.make<void>()
    const holder = yield* Effect.fork(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`)
          const [own] = yield* sql.unsafe<{ pid: number }>("SELECT pg_backend_pid() AS pid")
          yield* Deferred.succeed(locked, own!.pid)
          yield* Deferred.await(unlock)
        }))).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(pgUrl) })), Effect.orDie)
    )
    const holderPid = yield* Deferred.await(locked)
    const reading = yield* Effect.fork(Effect.exit(read))
    const waiting = pgQuery<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> $1 AND query LIKE $2",
      [holderPid, `%${table}%`]
    )
    const reader = yield* waiting.pipe(
      Effect.flatMap((rows) => rows.length === 1 ? Effect.succeed(rows[0]!.pid) : Effect.fail("not waiting yet")),
      Effect.retry({ times: 500 }),
      Effect.orDie
    )
    yield* pgQuery("SELECT pg_terminate_backend($1)", [reader])
    yield* Deferred.succeed(unlock, void 0)
    yield* Fiber.join(holder)
    const outcome = yield* Fiber.join(reading)
    const ended = (yield* pgQuery("SELECT pid FROM pg_stat_activity WHERE pid = $1", [reader])).length === 0
    return { outcome, ended }
  })

/** Runs one query on a SQLite file of its own, outside the store. */
export const sqliteQuery = <A extends object = Record<string, unknown>>(
  filename: string,
  text: string,
  values: Array<unknown> = []
) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(text, values)).pipe(
    Effect.provide(SqliteClient.layer({ filename })),
    Effect.orDie
  )

/** Drops the tables of a prefix when the layer is released (after the store built on top of it). */
export const dropPgTablesAfter = (prefix: string) =>
  Layer.scopedDiscard(
    Effect.addFinalizer(() =>
      pgQuery(`DROP TABLE IF EXISTS ${prefix}user_tokens, ${prefix}user_access_tokens`).pipe(Effect.ignore)
    )
  )

/** A directory removed when the layer is released. */
export const tempDir = (label: string) => Fs.mkdtempSync(Path.join(Os.tmpdir(), `effect-atm-${label}-`))

export const removeDirAfter = (dir: string) =>
  Layer.scopedDiscard(Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))))

/** A raw ioredis client for looking at keys, closed with the scope. */
export const rawRedis = (url = redisUrl) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis(url, { lazyConnect: true })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )

/** Every key under a prefix. */
export const redisKeys = (client: Redis, prefix: string) =>
  Effect.promise(async () => {
    const found: Array<string> = []
    let cursor = "0"
    do {
      const [next, batch] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
      cursor = next
      found.push(...batch)
    } while (cursor !== "0")
    return found
  })

/** Deletes every key under the prefix when the layer is released. */
export const deleteRedisKeysAfter = (prefix: string, url = redisUrl) =>
  Layer.scopedDiscard(
    Effect.addFinalizer(() =>
      Effect.scoped(Effect.flatMap(rawRedis(url), (client) =>
        Effect.flatMap(redisKeys(client, prefix), (found) =>
          found.length === 0 ? Effect.void : Effect.promise(() =>
            client.del(...found)
          )))).pipe(Effect.ignore)
    )
  )

/** A loopback port that was free a moment ago. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })

/** A Redis server of our own (to stop and start), with an append-only file so that a restart keeps its data. */
export const startRedisServer = async (port: number, dir: string) => {
  const child = spawn("redis-server", [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--dir",
    dir
  ], { stdio: "ignore" })
  const deadline = Date.now() + 5_000
  while (Date.now() < deadline) {
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null })
    probe.on("error", () => {})
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      return child
    } catch {
      probe.disconnect()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  child.kill("SIGKILL")
  throw new Error(`redis-server did not start on port ${port}`)
}

/** UserTokens (and OidcEvents) for the embedded provider's web client; the store comes from the caller. */
export const webUserTokens = Layer.unwrapEffect(
  Effect.map(IdentityProvider.IdentityProvider, (provider) =>
    UserTokens.layer({
      client: { issuer: provider.issuer, clientId: "web", clientSecret: Redacted.make("web-secret") },
      resource: IdentityProvider.Resources.demoApi
    }).pipe(Layer.provide(TokenEndpoint.layer()), Layer.provide(FetchHttpClient.layer)))
)

/**
 * The parent side of a cross-process test: user tokens over an encrypted Redis store under `prefix` (the same
 * store the instances use), an embedded provider with 5-second access tokens, and the keys removed afterwards.
 */
export const redisUserTokensEnvironment = (
  prefix: string,
  key: Redacted.Redacted<string>,
  provider?: IdentityProvider.Options
) =>
  webUserTokens.pipe(
    Layer.provideMerge(
      RedisStore.layer({ url: redisUrl, prefix }).pipe(Layer.provide(TokenEncryption.layer({ key: { key } })))
    ),
    Layer.provideMerge(IdentityProvider.layer({ accessTokenTtl: 5, ...provider })),
    Layer.provideMerge(deleteRedisKeysAfter(prefix)),
    Layer.orDie
  )

/**
 * A redis-server of our own on a free port (never the shared one), with an append-only file so that a restart keeps
 * its data; killed when the scope closes.
 */
export const ownRedisServer = Effect.gen(function*() {
  const dir = tempDir("redis")
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
  const port = yield* Effect.promise(freePort)
  let server = yield* Effect.promise(() => startRedisServer(port, dir))
  yield* Effect.addFinalizer(() => Effect.sync(() => server.kill("SIGKILL")))
  return {
    url: `redis://127.0.0.1:${port}`,
    kill: Effect.promise(() => {
      const exited = new Promise((resolve) => server.once("exit", resolve))
      server.kill("SIGKILL")
      return exited
    }),
    restart: Effect.promise(async () => {
      server = await startRedisServer(port, dir)
    })
  }
})
