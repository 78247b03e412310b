/**
 * The `SessionStore` in SQL (`@effect/sql`): SQLite (embedded, the default for one machine) or PostgreSQL (shared
 * by every instance). The table `<prefix>sessions`: the session sealed with the `TokenEncryption` in the context
 * (it holds the ID token and the user's claims), and in clear only what lookups need — the id, the subject, the
 * provider's `sid` and the expiry, which every read checks. Expired rows stay until `takeExpired` hands them to a
 * sweeper, which revokes their tokens. A second table, `<prefix>session_claims`, holds the one-time keys of
 * `claimOnce` (the `jti`s of logout tokens) until their time; the sweep deletes those past it, `releaseClaim` the
 * row of a claim given back.
 *
 * @since 0.3.0
 */
import type { SessionStoreError } from "@effect-atm/core/SessionStore"
import { SessionStore } from "@effect-atm/core/SessionStore"
import type * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "./internal/sqlSessionStore.js"

/**
 * @since 0.3.0
 * @category models
 */
export interface SessionStoreOptions {
  /** Prefix of the table names (`<prefix>sessions`, `<prefix>session_claims`). Default: `effect_atm_`. */
  readonly tablePrefix?: string | undefined
  /** Create the table and its indexes if they do not exist. Default: true. */
  readonly migrate?: boolean | undefined
}

/**
 * The store over the `SqlClient` and the `TokenEncryption` in the context.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make: (
  options?: SessionStoreOptions
) => Effect.Effect<SessionStore["Type"], SessionStoreError, SqlClient.SqlClient | TokenEncryption.TokenEncryption> =
  internal.make

/**
 * @example
 * ```ts
 * import { TokenEncryption } from "@effect-atm/core"
 * import { SqlSessionStore } from "@effect-atm/store-sql"
 * import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
 * import { Layer } from "effect"
 *
 * const SessionStoreLive = SqlSessionStore.layer().pipe(
 *   Layer.provide(SqliteClient.layer({ filename: "data/sessions.db" })),
 *   Layer.provide(TokenEncryption.layerConfig()) // TOKEN_ENCRYPTION_KEY=$(openssl rand -base64 32)
 * )
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (
  options?: SessionStoreOptions
): Layer.Layer<SessionStore, SessionStoreError, SqlClient.SqlClient | TokenEncryption.TokenEncryption> =>
  Layer.effect(SessionStore, make(options))
