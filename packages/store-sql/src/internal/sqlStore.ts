import { AccessToken, parametersKey } from "@effect-atm/core/AccessToken"
import { decodeDuration } from "@effect-atm/core/TokenClient"
import * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import { type StoreOperation, TokenStoreError } from "@effect-atm/core/TokenError"
import * as UserTokenModule from "@effect-atm/core/UserToken"
import { UserToken } from "@effect-atm/core/UserToken"
import { UserTokenStore } from "@effect-atm/core/UserTokenStore"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { Options } from "../SqlStore.js"
import { describe, isTransient } from "./driverError.js"
import { fencedTransaction, onLeaseSession } from "./lease.js"
import { migrate } from "./migration.js"

/** @internal */
export const defaults = {
  tablePrefix: "effect_atm_",
  timeToLive: Duration.days(14),
  purgeInterval: Duration.hours(1)
} as const

/** A duration option, strictly: a bad one fails the layer naming the option (see `TokenClient.decodeDuration`). */
const startOption = (store: string, name: string, input: unknown, fallback: Duration.Duration) => {
  const decoded = decodeDuration(input ?? fallback)
  return Either.isRight(decoded) ? Effect.succeed(decoded.right) : Effect.fail(
    new TokenStoreError({ store, operation: "start", transient: false, reason: `the option ${name} ${decoded.left}` })
  )
}

const tablePrefixPattern = /^[A-Za-z_][A-Za-z0-9_]{0,40}$/

interface Row {
  readonly userpayload: string
  readonly accesspayload: string | null
}

/** @internal */
export const make = (
  options: Options = {}
): Effect.Effect<
  UserTokenStore["Type"],
  TokenStoreError,
  SqlClient.SqlClient | TokenEncryption.TokenEncryption | Scope.Scope
> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const encryption = yield* TokenEncryption.TokenEncryption
    const store = sql.onDialectOrElse({ pg: () => "postgresql", sqlite: () => "sqlite", orElse: () => "sql" })
    if (store === "sql") {
      return yield* new TokenStoreError({
        store,
        operation: "start",
        reason: "the SqlClient is neither SQLite nor PostgreSQL, the dialects this store supports",
        transient: false
      })
    }
    const prefix = options.tablePrefix ?? defaults.tablePrefix
    if (!tablePrefixPattern.test(prefix)) {
      return yield* new TokenStoreError({
        store,
        operation: "start",
        transient: false,
        reason: `the table prefix "${prefix}" must be a letter or '_' followed by up to 40 letters, digits or '_'`
      })
    }
    const timeToLive = Duration.toMillis(
      yield* startOption(store, "timeToLive", options.timeToLive, defaults.timeToLive)
    )
    if (timeToLive <= 0) {
      return yield* new TokenStoreError({
        store,
        operation: "start",
        transient: false,
        reason: "the option timeToLive must be longer than zero (set it to the provider's refresh token lifetime)"
      })
    }
    const purgeInterval = yield* startOption(store, "purgeInterval", options.purgeInterval, defaults.purgeInterval)
    const users = sql(`${prefix}user_tokens`)
    const accessTokens = sql(`${prefix}user_access_tokens`)

    const fail = (operation: StoreOperation) => (error: SqlError) =>
      new TokenStoreError({ store, operation, reason: describe(error) })

    const run = <A>(
      operation: StoreOperation,
      effect: Effect.Effect<A, SqlError>
    ): Effect.Effect<A, TokenStoreError> => {
      // @effect/sql makes a failed COMMIT or ROLLBACK (a connection dropped mid-transaction) a defect: it is the
      // store failing all the same, and the caller (a refresh holding a rotated refresh token) must see it as such
      const attempt = Effect.catchSomeDefect(
        effect,
        (defect) => defect instanceof SqlError ? Option.some(Effect.fail(defect)) : Option.none()
      )
      return attempt.pipe(
        // retried up to 3 times; the retry's schedule is set up only once a transient failure happened (on every
        // run, `Effect.retry` costs more than the rest of this wrapping)
        Effect.catchIf(isTransient, () => Effect.retry(attempt, { while: isTransient, times: 2 })),
        Effect.mapError(fail(operation)),
        Effect.withSpan(`SqlStore.${operation}`, { attributes: { "db.system.name": store }, captureStackTrace: false })
      )
    }

    if (options.migrate ?? true) {
      const ddl = Effect.gen(function*() {
        yield* sql`CREATE TABLE IF NOT EXISTS ${users} (
          user_key TEXT PRIMARY KEY,
          payload TEXT NOT NULL,
          expires_at BIGINT NOT NULL,
          updated_at BIGINT NOT NULL
        )`
        yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${prefix}user_tokens_expires_at`)} ON ${users} (expires_at)`
        yield* sql`CREATE TABLE IF NOT EXISTS ${accessTokens} (
          user_key TEXT NOT NULL,
          params_key TEXT NOT NULL,
          payload TEXT NOT NULL,
          PRIMARY KEY (user_key, params_key)
        )`
      })
      yield* run("migrate", migrate(sql, prefix + "user_tokens", ddl))
    }

    const userCodec = TokenEncryption.codec(UserToken, encryption)
    const accessCodec = TokenEncryption.codec(AccessToken, encryption)
    // the context a sealed value is bound to: a value copied to another user's row does not open there
    const userContext = (user: string) => `user\u001d${user}`
    const accessContext = (user: string, params: string) => `access\u001d${user}\u001d${params}`

    const decodeFailure = (error: TokenEncryption.TokenDecryptionError) =>
      new TokenStoreError({ store, operation: "get", reason: error.message, transient: false })

    const purge = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      run(
        "purge",
        sql.withTransaction(Effect.gen(function*() {
          yield* sql`DELETE FROM ${users} WHERE expires_at <= ${now}`
          yield* sql`DELETE FROM ${accessTokens} WHERE NOT EXISTS (
            SELECT 1 FROM ${users} WHERE ${users}.user_key = ${accessTokens}.user_key
          )`
        }))
      ))

    if (Duration.isFinite(purgeInterval) && Duration.toMillis(purgeInterval) > 0) {
      yield* Effect.sleep(purgeInterval).pipe(
        Effect.zipRight(purge),
        Effect.catchAll((error) => Effect.logWarning("Purging expired user tokens failed", error.message)),
        Effect.forever,
        Effect.forkScoped
      )
    }

    return UserTokenStore.of({
      // SQLite serves one process; PostgreSQL is shared by every instance
      distributed: store === "postgresql",
      store: (user, token, params) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const paramsKey = parametersKey(params)
          const shared = yield* userCodec.encode(
            UserTokenModule.shared(token),
            userContext(user)
          )
          const access = token.accessToken === undefined
            ? undefined
            : yield* accessCodec.encode(token.accessToken, accessContext(user, paramsKey))
          yield* fencedTransaction(
            sql,
            "store",
            Effect.gen(function*() {
              if (store === "postgresql") {
                // the user row first, locked for the rest of the transaction: writers of one user queue here, so
                // the last one wins as a whole (its refresh token with its access tokens), never a mix
                const previous = yield* sql<{ expires_at: unknown }>`SELECT expires_at FROM ${users}
                  WHERE user_key = ${user} FOR UPDATE`
                if (previous.length > 0 && Number(previous[0]!.expires_at) <= now) {
                  // an expired entry's access tokens belong to a grant that is gone
                  yield* sql`DELETE FROM ${accessTokens} WHERE user_key = ${user}`
                }
              } else {
                // SQLite: a write first, so that the transaction takes the write lock at once (a read first could
                // not upgrade while another process writes the file)
                yield* sql`DELETE FROM ${accessTokens} WHERE user_key = ${user} AND EXISTS (
                  SELECT 1 FROM ${users} WHERE user_key = ${user} AND expires_at <= ${now}
                )`
              }
              yield* sql`INSERT INTO ${users} (user_key, payload, expires_at, updated_at)
                VALUES (${user}, ${shared}, ${now + timeToLive}, ${now})
                ON CONFLICT (user_key) DO UPDATE SET payload = excluded.payload,
                  expires_at = excluded.expires_at, updated_at = excluded.updated_at`
              if (access !== undefined) {
                yield* sql`INSERT INTO ${accessTokens} (user_key, params_key, payload)
                  VALUES (${user}, ${paramsKey}, ${access})
                  ON CONFLICT (user_key, params_key) DO UPDATE SET payload = excluded.payload`
              }
            }),
            run
          )
        }),
      get: (user, params) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const paramsKey = parametersKey(params)
          // one statement, one snapshot: the access token and the refresh token of the same write
          const rows = yield* onLeaseSession(
            sql,
            "get",
            sql<Row>`SELECT u.payload AS userpayload, a.payload AS accesspayload
              FROM ${users} u LEFT JOIN ${accessTokens} a ON a.user_key = u.user_key AND a.params_key = ${paramsKey}
              WHERE u.user_key = ${user} AND u.expires_at > ${now}`,
            run
          )
          if (rows.length === 0) return Option.none()
          const row = rows[0]!
          const shared = yield* Effect.mapError(userCodec.decode(row.userpayload, userContext(user)), decodeFailure)
          const accessToken = row.accesspayload === null
            ? undefined
            : yield* Effect.mapError(
              accessCodec.decode(row.accesspayload, accessContext(user, paramsKey)),
              decodeFailure
            )
          return Option.some(
            UserTokenModule.withAccessToken(shared, accessToken)
          )
        }),
      clear: (user, params) =>
        fencedTransaction(
          sql,
          "clear",
          params === undefined
            ? Effect.asVoid(Effect.zipRight(
              sql`DELETE FROM ${users} WHERE user_key = ${user}`,
              sql`DELETE FROM ${accessTokens} WHERE user_key = ${user}`
            ))
            : Effect.asVoid(
              sql`DELETE FROM ${accessTokens} WHERE user_key = ${user} AND params_key = ${parametersKey(params)}`
            ),
          run
        )
    })
  })
