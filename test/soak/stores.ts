import type { TokenLock, UserTokenStore } from "@effect-atm/core"
import { AccessTokenStore, TokenEncryption } from "@effect-atm/core"
import { RedisStore } from "@effect-atm/store-redis"
import { SqlStore, SqlTokenLock } from "@effect-atm/store-sql"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"

/** Where the soak keeps its tokens: its own Redis server, or the shared PostgreSQL under tables of its own. */
export type SoakStore =
  | { readonly _tag: "redis"; readonly url: string; readonly prefix: string; readonly leaseSeconds: number }
  | {
    readonly _tag: "postgresql"
    readonly url: string
    readonly tablePrefix: string
    readonly applicationName: string
  }

/**
 * The user token store and the renewal lock of the soak, the same in the test process (sign-in, sign-out, the final
 * checks) and in every instance: Redis for store and lease, or PostgreSQL for store (`SqlStore`) and lock
 * (`SqlTokenLock`) on one pool.
 */
export const soakStores = (
  store: SoakStore,
  key: Redacted.Redacted<string>
): Layer.Layer<UserTokenStore.UserTokenStore | AccessTokenStore.AccessTokenStore | TokenLock.TokenLock> => {
  const encryption = TokenEncryption.layer({ key: { key } })
  const stores = store._tag === "redis"
    ? RedisStore.layer({
      url: store.url,
      prefix: store.prefix,
      leaseTime: Duration.seconds(store.leaseSeconds),
      // generous: a restarted Redis, four processes and the provider share the machine's CPUs
      commandTimeout: "10 seconds"
    })
    : Layer.mergeAll(
      SqlStore.layer({ tablePrefix: store.tablePrefix }),
      SqlTokenLock.layer(),
      AccessTokenStore.layerMemory()
    )
      .pipe(
        Layer.provide(PgClient.layer({
          url: Redacted.make(store.url),
          applicationName: store.applicationName,
          maxConnections: 8
        }))
      )
  return stores.pipe(Layer.provide(encryption), Layer.orDie)
}

/** What an instance tells the test process, as it happens. */
export type Message =
  /** about to send a refresh request for `user` (a store key): sent, and written to the channel, before it goes */
  | { readonly t: "start"; readonly user: string; readonly at: number; readonly rt: string }
  /** the refresh of `user` rotated its tokens and they are stored */
  | { readonly t: "written"; readonly user: string; readonly at: number; readonly rt: string }
  /** the provider answered the refresh with an error: nothing was rotated */
  | { readonly t: "answered"; readonly user: string; readonly at: number; readonly rt: string; readonly reason: string }
  /** a write of `user`'s tokens failed (the library retries it while the store fails transiently) */
  | {
    readonly t: "storeFailed"
    readonly user: string
    readonly at: number
    readonly reason: string
    readonly rt: string
  }
  /**
   * the refresh got no answer (timeout, connection lost, interrupted): whether the provider rotated the refresh
   * token is unknown; or its write was refused because the renewal lease was lost meanwhile: the rotated refresh
   * token is gone
   */
  | {
    readonly t: "unknown"
    readonly user: string
    readonly at: number
    readonly reason: string
    readonly rt: string
    /** the provider's answer, when it answered but the renewal lease was lost while the request was in flight */
    readonly answer?: string | undefined
  }
  /** clearing `user`'s tokens (after a rejected refresh, at sign-out) failed */
  | {
    readonly t: "clearFailed"
    readonly user: string
    readonly at: number
    readonly reason: string
    readonly rt: string
  }
  | { readonly t: "calls"; readonly calls: ReadonlyArray<Call> }
  | { readonly t: "stopped" }

/** One caller: asked for `subject`'s token and called the recording API with it. */
export interface Call {
  readonly subject: string
  readonly outcome: "ok" | "typed" | "defect" | "hang"
  /** the error tag (and OAuth error or reason) of a failure, the defect's message */
  readonly detail?: string | undefined
  /** the API's status */
  readonly status?: number | undefined
  /** every token the library handed to this caller (the first, and the one that replaced it after a 401) */
  readonly handed: ReadonlyArray<Handed>
}

export interface Handed {
  /** when the caller asked for a token (before `get` / `renew`) */
  readonly askedAt: number
  /** when it got it */
  readonly at: number
  /** the library's `expiresAt` */
  readonly expiresAt: number
  /** the JWT's `exp` (seconds) */
  readonly exp: number
  /** the JWT's `sub` */
  readonly sub: string
}

/** What the test process tells an instance. */
export type Command = { readonly go: { readonly callsPerSecond: number } } | "stop" | "exit"
