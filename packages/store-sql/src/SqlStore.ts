/**
 * A durable `UserTokenStore` on `@effect/sql`: SQLite (embedded, a file or memory) or PostgreSQL (shared by
 * several instances). A user's refresh token and ID token live in one row, their access tokens (one per resource
 * and scope) in rows beside it; a write is one transaction, so a refreshed access token and its rotated refresh
 * token are stored together or not at all, and a read is one statement.
 *
 * With a `TokenEncryption` in the context, every token is encrypted at rest (AES-256-GCM).
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, AccessTokenStore, TokenEncryption, TokenLock } from "@effect-atm/core"
 * import { SqlStore } from "@effect-atm/store-sql"
 * import { Layer, Redacted } from "effect"
 *
 * // one process whose users stay signed in across restarts
 * const StoresLive = Layer.mergeAll(
 *   SqlStore.layerSqlite({ filename: "data/tokens.db", timeToLive: "30 days" }),
 *   AccessTokenStore.layerMemory(), // client-credentials tokens need not outlive the process
 *   TokenLock.layerMemory
 * ).pipe(Layer.provide(TokenEncryption.layerConfig())) // TOKEN_ENCRYPTION_KEY=$(openssl rand -base64 32)
 *
 * const TokensLive = AccessTokenManagement.layerServer({
 *   client: { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("…") },
 *   resource: "https://api.example.com"
 * }).pipe(Layer.provide(StoresLive))
 * ```
 *
 * @since 0.1.0
 */
import type * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import { TokenStoreError } from "@effect-atm/core/TokenError"
import { UserTokenStore } from "@effect-atm/core/UserTokenStore"
import * as Reactivity from "@effect/experimental/Reactivity"
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as internal from "./internal/sqlStore.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Prefix of the table names (`<prefix>user_tokens`, `<prefix>user_access_tokens`): letters, digits and `_`.
   * Default: `effect_atm_`.
   */
  readonly tablePrefix?: string | undefined
  /**
   * How long a user's tokens are kept after their last write: set it to the provider's refresh token lifetime
   * (after that the refresh token is dead and the entry useless). Default: 14 days.
   */
  readonly timeToLive?: Duration.DurationInput | undefined
  /** Create the tables (if they do not exist) when the layer is built. Default: true. */
  readonly migrate?: boolean | undefined
  /** How often rows past their time to live are deleted (expired rows are never read either way). Default: 1 hour. */
  readonly purgeInterval?: Duration.DurationInput | undefined
}

/**
 * The store over the `SqlClient` in the context (any @effect/sql client: SQLite, PostgreSQL, or one you already
 * have). Creates its tables unless `migrate` is false; seals tokens with the `TokenEncryption` in the context
 * (`TokenEncryption.layerPlaintext` to store them in the clear).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options?: Options
) => Effect.Effect<
  UserTokenStore["Type"],
  TokenStoreError,
  SqlClient.SqlClient | TokenEncryption.TokenEncryption | Scope.Scope
> = internal.make

/**
 * The store over the `SqlClient` provided to it: a pool the application already has, or one shared with
 * `SqlTokenLock`.
 *
 * @example
 * ```ts
 * import { AccessTokenStore, TokenEncryption } from "@effect-atm/core"
 * import { SqlStore, SqlTokenLock } from "@effect-atm/store-sql"
 * import { PgClient } from "@effect/sql-pg"
 * import { Config, Layer } from "effect"
 *
 * // several instances behind a load balancer, PostgreSQL and no Redis
 * const StoresLive = Layer.mergeAll(
 *   SqlStore.layer({ tablePrefix: "shop_" }),
 *   SqlTokenLock.layer(), // one instance at a time refreshes a user's rotating refresh token
 *   AccessTokenStore.layerMemory() // each instance keeps its own client-credentials tokens
 * ).pipe(
 *   Layer.provide(PgClient.layerConfig({ url: Config.redacted("DATABASE_URL") })),
 *   Layer.provide(TokenEncryption.layerConfig())
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<UserTokenStore, TokenStoreError, SqlClient.SqlClient | TokenEncryption.TokenEncryption> =>
  Layer.scoped(UserTokenStore, make(options))

const messageOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "object" && cause !== null && "message" in cause
    ? String(cause.message)
    : "unknown failure"

const connectError = (store: string) => (cause: unknown) =>
  new TokenStoreError({ store, operation: "connect", reason: messageOf(cause) })

/**
 * The drivers are optional peers, loaded by the layer that needs them: PostgreSQL users install no SQLite (native
 * code), SQLite users no `pg`.
 */
const loadDriver = <A>(store: string, driver: string, load: () => Promise<A>): Effect.Effect<A, TokenStoreError> =>
  Effect.tryPromise({
    try: load,
    catch: (cause) => {
      const code = typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined
      const missing = (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
        messageOf(cause).includes(`'${driver}'`)
      return new TokenStoreError({
        store,
        operation: "start",
        reason: missing
          ? `${driver} is not installed (an optional peer dependency of @effect-atm/store-sql): npm install ${driver}`
          : `${driver} could not be loaded (${messageOf(cause)}): npm install ${driver}`,
        transient: false
      })
    }
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface SqliteOptions extends Options, Omit<SqliteClient.SqliteClientConfig, "filename"> {
  /** The database file (its directory is created if needed), or `:memory:` for a store that lives in memory. */
  readonly filename: string
}

/**
 * The store in an embedded SQLite database (`@effect/sql-sqlite-node`): one process, or several processes on one
 * machine sharing the file.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSqlite = (
  options: SqliteOptions
): Layer.Layer<UserTokenStore, TokenStoreError, TokenEncryption.TokenEncryption> =>
  Layer.scoped(
    UserTokenStore,
    Effect.gen(function*() {
      const Sqlite = yield* loadDriver(
        "sqlite",
        "@effect/sql-sqlite-node",
        () => import("@effect/sql-sqlite-node/SqliteClient")
      )
      if (options.filename !== ":memory:" && options.filename !== "") {
        yield* Effect.try({
          try: () => Fs.mkdirSync(Path.dirname(Path.resolve(options.filename)), { recursive: true }),
          catch: connectError("sqlite")
        })
      }
      const client = yield* Sqlite.make(options).pipe(
        // better-sqlite3 throws when the file cannot be opened
        Effect.catchAllDefect((defect) => Effect.fail(connectError("sqlite")(defect))),
        Effect.provide(Reactivity.layer)
      )
      return yield* Effect.provideService(make(options), SqlClient.SqlClient, client)
    })
  )

/**
 * @since 0.1.0
 * @category models
 */
export interface PgOptions extends Options, PgClient.PgClientConfig {}

/**
 * The store in PostgreSQL (`@effect/sql-pg`), shared by every instance of the application.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg = (
  options: PgOptions
): Layer.Layer<UserTokenStore, TokenStoreError, TokenEncryption.TokenEncryption> =>
  Layer.scoped(
    UserTokenStore,
    Effect.gen(function*() {
      const Pg = yield* loadDriver("postgresql", "@effect/sql-pg", () => import("@effect/sql-pg/PgClient"))
      const client = yield* Pg.make(options).pipe(
        Effect.mapError(connectError("postgresql")),
        Effect.provide(Reactivity.layer)
      )
      return yield* Effect.provideService(make(options), SqlClient.SqlClient, client)
    })
  )

/**
 * What `layerConfig` reads.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions extends Options {
  /** `sqlite:<file>`, `sqlite::memory:`, or a `postgres://` / `postgresql://` connection URL. */
  readonly url: Redacted.Redacted<string>
}

/**
 * Reads `URL` (default `sqlite:effect-atm-tokens.db`), `TABLE_PREFIX` and `TIME_TO_LIVE`, nested under
 * `TOKEN_STORE` by `layerConfig` (environment: `TOKEN_STORE_URL`, ...).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<ConfigOptions> = Config.all({
  url: Config.redacted("URL").pipe(
    Config.withDefault(Redacted.make("sqlite:effect-atm-tokens.db")),
    Config.withDescription("sqlite:<file>, sqlite::memory: or postgres://user@host:5432/database")
  ),
  tablePrefix: Config.string("TABLE_PREFIX").pipe(Config.withDefault(internal.defaults.tablePrefix)),
  timeToLive: Config.duration("TIME_TO_LIVE").pipe(
    Config.withDefault(internal.defaults.timeToLive),
    Config.withDescription("How long a user's tokens are kept after their last write (refresh token lifetime)")
  )
})

/**
 * Picks SQLite or PostgreSQL from the URL in the configuration.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromUrl = (
  options: ConfigOptions
): Layer.Layer<UserTokenStore, TokenStoreError, TokenEncryption.TokenEncryption> => {
  const url = Redacted.value(options.url)
  if (url.startsWith("sqlite:")) {
    const filename = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "")
    return layerSqlite({ ...options, filename: filename === "" ? ":memory:" : filename })
  }
  if (url.startsWith("postgres://") || url.startsWith("postgresql://")) {
    return layerPg({ ...options, url: options.url })
  }
  return Layer.fail(
    new TokenStoreError({
      store: "sql",
      operation: "start",
      reason: "the store URL must start with sqlite:, postgres:// or postgresql://"
    })
  )
}

/**
 * The store from Effect `Config` (by default `config` nested under `TOKEN_STORE`): SQLite or PostgreSQL by URL.
 *
 * @example
 * ```ts
 * import { TokenEncryption } from "@effect-atm/core"
 * import { SqlStore } from "@effect-atm/store-sql"
 * import { Layer } from "effect"
 *
 * // TOKEN_STORE_URL=sqlite:data/tokens.db      (default sqlite:effect-atm-tokens.db)
 * // TOKEN_STORE_URL=postgres://app@db:5432/app TOKEN_STORE_TIME_TO_LIVE="30 days"
 * // TOKEN_ENCRYPTION_KEY=$(openssl rand -base64 32)
 * const UserTokenStoreLive = SqlStore.layerConfig().pipe(Layer.provide(TokenEncryption.layerConfig()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: Config.Config<ConfigOptions>
): Layer.Layer<UserTokenStore, TokenStoreError | ConfigError.ConfigError, TokenEncryption.TokenEncryption> =>
  Layer.unwrapEffect(Effect.map(options ?? Config.nested(config, "TOKEN_STORE"), layerFromUrl))
