/**
 * Where sessions and pending sign-ins live. In memory by default (one process); implement the Tag to share them
 * between instances (every entry has an expiry to use as the backend's time to live).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { SessionStoreError } from "./LoginError.js"
import type { PendingLogin, Session } from "./Session.js"

/**
 * Implement it to share sessions between instances: every entry carries its expiry, to use as a time to live, and
 * `takePending` must be atomic.
 *
 * @example
 * ```ts
 * import { LoginError, Session, SessionStore } from "@effect-atm/oidc-login"
 * import { RedisConnection } from "@effect-atm/store-redis"
 * import { Clock, Effect, Layer, Schema } from "effect"
 *
 * // on the Redis the token store already uses; entries hold the ID token and the PKCE verifier in clear
 * const SessionJson = Schema.parseJson(Session.Session)
 * const PendingJson = Schema.parseJson(Session.PendingLogin)
 *
 * const failed = (operation: LoginError.SessionStoreError["operation"]) => (cause: unknown) =>
 *   new LoginError.SessionStoreError({ store: "redis", operation, reason: String(cause) })
 *
 * const RedisSessionStore = Layer.effect(
 *   SessionStore.SessionStore,
 *   Effect.gen(function*() {
 *     const redis = yield* RedisConnection.RedisConnection
 *     const read = <A>(schema: Schema.Schema<A, string>, json: string | null) =>
 *       json === null ? Effect.succeedNone : Effect.asSome(Schema.decode(schema)(json))
 *     const write = <A>(key: string, schema: Schema.Schema<A, string>, value: A, expiresAt: number) =>
 *       Effect.gen(function*() {
 *         const json = yield* Schema.encode(schema)(value)
 *         const ttl = Math.max(1, expiresAt - (yield* Clock.currentTimeMillis))
 *         yield* Effect.tryPromise(() => redis.set(key, json, "PX", ttl))
 *       })
 *     return SessionStore.SessionStore.of({
 *       get: (id) =>
 *         Effect.tryPromise(() => redis.get(`session:${id}`)).pipe(
 *           Effect.flatMap((json) => read(SessionJson, json)),
 *           Effect.mapError(failed("get"))
 *         ),
 *       set: (session) =>
 *         write(`session:${session.id}`, SessionJson, session, session.expiresAt).pipe(Effect.mapError(failed("set"))),
 *       remove: (id) =>
 *         Effect.tryPromise(() => redis.del(`session:${id}`)).pipe(Effect.asVoid, Effect.mapError(failed("remove"))),
 *       setPending: (pending) =>
 *         write(`login:${pending.id}`, PendingJson, pending, pending.expiresAt).pipe(
 *           Effect.mapError(failed("setPending"))
 *         ),
 *       // GETDEL: of two callbacks racing with one id, one gets the pending sign-in
 *       takePending: (id) =>
 *         Effect.tryPromise(() => redis.getdel(`login:${id}`)).pipe(
 *           Effect.flatMap((json) => read(PendingJson, json)),
 *           Effect.mapError(failed("takePending"))
 *         )
 *     })
 *   })
 * ).pipe(Layer.provide(RedisConnection.layerConfig()))
 * ```
 *
 * @since 0.1.0
 * @category tags
 */
export class SessionStore extends Context.Tag("@effect-atm/oidc-login/SessionStore")<SessionStore, {
  /** The session, or `None` when it does not exist or has expired (`Session.expiresAt`). */
  readonly get: (id: string) => Effect.Effect<Option.Option<Session>, SessionStoreError>
  /** Creates or replaces a session; it may be dropped once `session.expiresAt` has passed. */
  readonly set: (session: Session) => Effect.Effect<void, SessionStoreError>
  readonly remove: (id: string) => Effect.Effect<void, SessionStoreError>
  /** Stores a sign-in in progress; it may be dropped once `pending.expiresAt` has passed. */
  readonly setPending: (pending: PendingLogin) => Effect.Effect<void, SessionStoreError>
  /**
   * Returns and removes a sign-in in progress, atomically: of two callbacks racing with the same id, one gets it.
   */
  readonly takePending: (id: string) => Effect.Effect<Option.Option<PendingLogin>, SessionStoreError>
}>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  /** At most this many sessions; when full, expired ones go first, then the least recently written. Default 100,000. */
  readonly capacity?: number | undefined
  /** At most this many sign-ins in progress. Default 10,000. */
  readonly pendingCapacity?: number | undefined
}

const boundedMap = <V>(capacity: number, expiresAt: (value: V) => number) => {
  const entries = new Map<string, V>()
  return {
    get: (key: string, now: number): V | undefined => {
      const value = entries.get(key)
      if (value !== undefined && expiresAt(value) <= now) {
        entries.delete(key)
        return undefined
      }
      return value
    },
    set: (key: string, value: V, now: number): void => {
      entries.delete(key)
      if (entries.size >= capacity) {
        for (const [k, v] of entries) {
          if (expiresAt(v) <= now) entries.delete(k)
        }
        // Map order is write order: the first key is the least recently written
        while (entries.size >= capacity) entries.delete(entries.keys().next().value!)
      }
      entries.set(key, value)
    },
    delete: (key: string): V | undefined => {
      const value = entries.get(key)
      entries.delete(key)
      return value
    }
  }
}

/**
 * An in-memory store, bounded in entries; expired entries are never returned.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (options?: MemoryOptions): SessionStore["Type"] => {
  const sessions = boundedMap<Session>(options?.capacity ?? 100_000, (session) => session.expiresAt)
  const pending = boundedMap<PendingLogin>(options?.pendingCapacity ?? 10_000, (login) => login.expiresAt)
  return SessionStore.of({
    get: (id) => Effect.map(Clock.currentTimeMillis, (now) => Option.fromNullable(sessions.get(id, now))),
    set: (session) => Effect.map(Clock.currentTimeMillis, (now) => sessions.set(session.id, session, now)),
    remove: (id) => Effect.sync(() => void sessions.delete(id)),
    setPending: (login) => Effect.map(Clock.currentTimeMillis, (now) => pending.set(login.id, login, now)),
    takePending: (id) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const login = pending.delete(id)
        return login !== undefined && login.expiresAt > now ? Option.some(login) : Option.none()
      })
  })
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<SessionStore> =>
  Layer.sync(SessionStore, () => makeMemory(options))
