/**
 * Where sessions live: in memory by default (one process), in SQL or Redis (`@effect-atm/store-sql`,
 * `@effect-atm/store-redis`) to share them between instances, or yours (implement the Tag and run
 * `SessionStoreSuite` from `@effect-atm/testing` on it).
 *
 * The store enforces expiry: `get` and the lookups never return a session past its idle or absolute deadline. It
 * keeps an expired session until `takeExpired` hands it to one caller, so that its tokens can be revoked and
 * cleared (a backend with its own time to live keeps it at least `retention` longer). It also remembers one-time
 * ids (`claimOnce`) for every instance, e.g. the `jti` of each back-channel logout token, and gives back a claim
 * whose work failed (`releaseClaim`), so that a retry can claim it again.
 *
 * @since 0.3.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import type { Session } from "./Session.js"

/**
 * @since 0.3.0
 * @category type ids
 */
export const ErrorTypeId: unique symbol = Symbol.for("@effect-atm/core/SessionStore/Error")

/**
 * @since 0.3.0
 * @category type ids
 */
export type ErrorTypeId = typeof ErrorTypeId

/**
 * What a session store was doing when it failed.
 *
 * @since 0.3.0
 * @category models
 */
export const SessionStoreOperation = Schema.Literal(
  "start",
  "connect",
  "get",
  "set",
  "remove",
  "find",
  "takeExpired",
  "claim",
  "release"
)

/**
 * @since 0.3.0
 * @category models
 */
export type SessionStoreOperation = typeof SessionStoreOperation.Type

/**
 * The session store failed (unreachable, timed out) or holds data that cannot be read back (e.g. sealed with a
 * key no longer configured).
 *
 * @since 0.3.0
 * @category errors
 */
export class SessionStoreError extends Schema.TaggedError<SessionStoreError>()("SessionStoreError", {
  store: Schema.String,
  operation: SessionStoreOperation,
  reason: Schema.String
}) {
  /**
   * @since 0.3.0
   */
  readonly [ErrorTypeId]: ErrorTypeId = ErrorTypeId

  /**
   * The status of an error page: the server failed, not the browser.
   *
   * @since 0.3.0
   */
  get httpStatus(): number {
    return 500
  }

  override get message(): string {
    return `The ${this.store} session store failed to ${this.operation}: ${this.reason}.`
  }
}

/**
 * @since 0.3.0
 * @category guards
 */
export const isSessionStoreError = (u: unknown): u is SessionStoreError => Predicate.hasProperty(u, ErrorTypeId)

/**
 * Implement it to keep sessions elsewhere; `SessionStoreSuite` (in `@effect-atm/testing`) checks an implementation.
 *
 * @example
 * ```ts
 * import { Session, SessionStore } from "@effect-atm/core"
 * import { Effect, Option } from "effect"
 *
 * // end every session of a user (e.g. an administrator's "sign out everywhere")
 * const endAll = (subject: string) =>
 *   Effect.gen(function*() {
 *     const store = yield* SessionStore.SessionStore
 *     const sessions = yield* store.findBySubject(subject)
 *     for (const session of sessions) {
 *       const removed: Option.Option<Session.Session> = yield* store.remove(session.id)
 *       // Some: this caller removed it, and is the one to revoke its tokens
 *       if (Option.isSome(removed)) yield* Effect.log(`ended ${removed.value.id}`)
 *     }
 *   })
 * ```
 *
 * @since 0.3.0
 * @category tags
 */
export class SessionStore extends Context.Tag("@effect-atm/core/SessionStore")<SessionStore, {
  /** The session, or `None` when there is none with this id or it is past `Session.expiresAt`. */
  readonly get: (id: string) => Effect.Effect<Option.Option<Session>, SessionStoreError>
  /** Creates or replaces a session (e.g. its idle deadline slid forward by use). */
  readonly set: (session: Session) => Effect.Effect<void, SessionStoreError>
  /**
   * Removes a session and returns it, expired or not; atomically: of concurrent removals of one id, exactly one
   * gets `Some` (and so revokes the session's tokens once, cluster-wide).
   */
  readonly remove: (id: string) => Effect.Effect<Option.Option<Session>, SessionStoreError>
  /** The live sessions of a user (`Session.subject`), e.g. for back-channel logout without `sid`. */
  readonly findBySubject: (subject: string) => Effect.Effect<ReadonlyArray<Session>, SessionStoreError>
  /** The live sessions of a provider session (`Session.providerSessionId`, the `sid` claim). */
  readonly findByProviderSession: (sid: string) => Effect.Effect<ReadonlyArray<Session>, SessionStoreError>
  /**
   * Removes and returns up to `limit` sessions past their expiry, each to exactly one caller: the caller revokes
   * and clears their tokens. Run periodically (the login does).
   */
  readonly takeExpired: (limit: number) => Effect.Effect<ReadonlyArray<Session>, SessionStoreError>
  /**
   * Records `key` until `until` (epoch milliseconds, on the Effect `Clock`), atomically: `true` for the one caller
   * that recorded it, `false` while an earlier record of it has not passed its `until`. A record past its `until`
   * is forgotten (the key can be claimed again). The back-channel logout claims each logout token's `jti` here, so
   * that a token replayed to any instance sharing the store is refused.
   *
   * @since 0.3.0
   */
  readonly claimOnce: (key: string, until: number) => Effect.Effect<boolean, SessionStoreError>
  /**
   * Gives back the claim of `key` made with this `until`, atomically: the key can be claimed again at once. The
   * `until` names the claim: a later claim of the key (made after this one passed its time) has a later `until`
   * and is kept. Releasing a key not claimed, past its time or claimed anew is a no-op. The back-channel logout
   * releases a `jti` whose sessions could not be ended, so that the provider's retry of the token is accepted
   * (while a replay after a successful logout is still refused).
   *
   * @since 0.3.0
   */
  readonly releaseClaim: (key: string, until: number) => Effect.Effect<void, SessionStoreError>
}>() {}

/**
 * @since 0.3.0
 * @category models
 */
export interface MemoryOptions {
  /**
   * At most this many sessions; when full, expired ones go first, then the least recently written (an evicted
   * live session is signed out without its tokens being revoked: size it above the number of users). Default
   * 100,000. Claims (`claimOnce`) are bounded by the same number, separately: the oldest go first.
   */
  readonly capacity?: number | undefined
}

/**
 * An in-memory store for one process, bounded in entries.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeMemory = (options?: MemoryOptions): SessionStore["Type"] => {
  const capacity = options?.capacity ?? 100_000
  // Map order is write order: the first key is the least recently written
  const sessions = new Map<string, Session>()
  // key → until, in claim order
  const claims = new Map<string, number>()
  const live = (now: number) => (session: Session) => session.expiresAt > now
  const find = (predicate: (session: Session) => boolean) =>
    Effect.map(Clock.currentTimeMillis, (now) => [...sessions.values()].filter((s) => predicate(s) && live(now)(s)))
  return SessionStore.of({
    get: (id) =>
      Effect.map(Clock.currentTimeMillis, (now) => Option.filter(Option.fromNullable(sessions.get(id)), live(now))),
    set: (session) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        sessions.delete(session.id)
        if (sessions.size >= capacity) {
          for (const [id, s] of sessions) if (s.expiresAt <= now) sessions.delete(id)
          while (sessions.size >= capacity) sessions.delete(sessions.keys().next().value!)
        }
        sessions.set(session.id, session)
      }),
    remove: (id) =>
      Effect.sync(() => {
        const session = sessions.get(id)
        sessions.delete(id)
        return Option.fromNullable(session)
      }),
    findBySubject: (subject) => find((session) => session.subject === subject),
    findByProviderSession: (sid) => find((session) => session.providerSessionId === sid),
    takeExpired: (limit) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const taken: Array<Session> = []
        for (const session of sessions.values()) {
          if (taken.length >= limit) break
          if (session.expiresAt <= now) taken.push(session)
        }
        for (const session of taken) sessions.delete(session.id)
        return taken
      }),
    claimOnce: (key, until) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const previous = claims.get(key)
        if (previous !== undefined && previous > now) return false
        claims.delete(key)
        if (claims.size >= capacity) {
          for (const [k, u] of claims) if (u <= now) claims.delete(k)
          while (claims.size >= capacity) claims.delete(claims.keys().next().value!)
        }
        claims.set(key, until)
        return true
      }),
    releaseClaim: (key, until) =>
      Effect.sync(() => {
        if (claims.get(key) === until) claims.delete(key)
      })
  })
}

/**
 * @since 0.3.0
 * @category layers
 */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<SessionStore> =>
  Layer.sync(SessionStore, () => makeMemory(options))
