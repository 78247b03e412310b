/**
 * Two instances of an application share one PostgreSQL token store and nothing else (no Redis): each has its own
 * connection pool, token cache and single flight. The advisory-lock `SqlTokenLock` makes them refresh a user's
 * rotating refresh token once; without it they both refresh and the provider revokes the grant.
 */
import { CurrentUser, TokenEncryption, TokenLock, UserTokens, UserTokenStore } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { SqlStore, SqlTokenLock } from "@effect-atm/store-sql"
import { TokenLockSuite, UserTokenStoreSuite } from "@effect-atm/testing"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { signIn } from "../../../test/support/login.js"
import { dropPgTablesAfter, pgQuery, pgUrl, runId, webUserTokens } from "../../../test/support/stores.js"

const { makeToken, uniqueUser } = UserTokenStoreSuite
const prefix = `lock_${runId()}_`
const calls = 250

/** Ends the session holding the advisory lock for `key` (only this test's sessions lock its unique keys). */
const terminateHolder = (key: string) =>
  pgQuery(
    `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND classid::bigint = ((hashtextextended($1, 0) >> 32) & 4294967295)
      AND objid::bigint = (hashtextextended($1, 0) & 4294967295)`,
    [key]
  )

/**
 * One instance with `SqlStore` and `SqlTokenLock` on its own pool (of `maxConnections`), whose writes under a lease
 * first end the session holding the lock when `dropAt(user)` says so (a dropped connection, a failover): `inner` is
 * the store without that, `services` the user token manager over it.
 */
const sessionDroppingInstance = (dropAt: (user: string) => boolean, maxConnections?: number) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const backend = yield* Layer.build(
      Layer.merge(SqlStore.layer({ tablePrefix: prefix }), SqlTokenLock.layer({ lockTimeout: "20 seconds" })).pipe(
        Layer.provide(TokenEncryption.layerPlaintext),
        Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl), maxConnections })),
        Layer.orDie
      )
    )
    const inner = Context.get(backend, UserTokenStore.UserTokenStore)
    const dropping = UserTokenStore.UserTokenStore.of({
      ...inner,
      store: (user, token, params) =>
        Effect.flatMap(TokenLock.CurrentLease, (lease) =>
          Option.isSome(lease) && dropAt(user)
            ? Effect.zipRight(terminateHolder(lease.value.key), inner.store(user, token, params))
            : inner.store(user, token, params))
    })
    const services = yield* Layer.build(
      webUserTokens.pipe(
        Layer.provideMerge(Layer.succeed(UserTokenStore.UserTokenStore, dropping)),
        Layer.provideMerge(Layer.succeed(TokenLock.TokenLock, Context.get(backend, TokenLock.TokenLock))),
        Layer.provideMerge(Layer.succeed(IdentityProvider.IdentityProvider, provider))
      )
    )
    return { inner, provider, services }
  })

/** One application instance: its own pool, store, (optional) lock and user token manager. */
const instance = (withLock: boolean) =>
  webUserTokens.pipe(
    Layer.provideMerge(
      Layer.merge(
        SqlStore.layer({ tablePrefix: prefix }).pipe(Layer.provide(TokenEncryption.layerPlaintext)),
        // without a distributed lock, the manager warns at start-up; this instance shows why
        withLock ? SqlTokenLock.layer({ lockTimeout: "20 seconds" }) : TokenLock.layerMemory
      )
    ),
    Layer.provideMerge(PgClient.layer({ url: Redacted.make(pgUrl) })),
    Layer.orDie
  )

const Env = Layer.merge(IdentityProvider.layer({ accessTokenTtl: 3 }), dropPgTablesAfter(prefix))

/**
 * Both instances call at once after the access token expired. `answerLate` makes the provider handle a refresh at
 * once but answer it later: without a shared lock, the other instance then reads the old tokens and presents the
 * same refresh token before the first answer is stored, whatever the machine's load (without it, one instance may
 * store its answer before the other's burst reads the store, and there is nothing to detect).
 */
const burstAtExpiry = (withLock: boolean, answerLate?: Duration.DurationInput) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const a = yield* Layer.build(instance(withLock))
    const b = yield* Layer.build(instance(withLock))
    const { user } = yield* signIn(`pg-${withLock ? "locked" : "unlocked"}`).pipe(Effect.provide(a))
    const stored = Option.getOrThrow(
      yield* Effect.flatMap(UserTokenStore.UserTokenStore, (store) =>
        store.get(CurrentUser.storeKey(user), { resource: IdentityProvider.Resources.demoApi })).pipe(
          Effect.provide(a)
        )
    )
    // the provider's clock is real: wait until the access token has expired
    yield* Effect.sleep(Math.max(0, stored.accessToken!.expiresAt - Date.now() + 100))
    yield* provider.resetCounters
    if (answerLate !== undefined) {
      yield* provider.setTokenFault({ _tag: "LateAnswer", millis: Duration.toMillis(answerLate) })
    }
    const burst = (context: Context.Context<UserTokens.UserTokens>) =>
      Effect.all(
        Array.from({ length: calls }, () =>
          Effect.either(Effect.flatMap(UserTokens.UserTokens, (tokens) =>
            tokens.get()))),
        { concurrency: "unbounded" }
      ).pipe(Effect.provide(context), CurrentUser.provide(user))
    const [fromA, fromB] = yield* Effect.all([burst(a), burst(b)], { concurrency: 2 })
    const results = [...fromA, ...fromB]
    const refreshes = yield* provider.tokenRequests({ grantType: "refresh_token" })
    yield* provider.setTokenFault(undefined)
    const later = yield* Effect.either(
      Effect.flatMap(UserTokens.UserTokens, (tokens) =>
        tokens.get({ forceRenewal: true })).pipe(
          Effect.provide(b),
          CurrentUser.provide(user)
        )
    )
    return { results, refreshes, later }
  })

layer(Env, { excludeTestServices: true, timeout: "60 seconds" })("PostgreSQL advisory-lock TokenLock", (it) => {
  it.scoped(`two instances × ${calls} calls at expiry with SqlTokenLock → one refresh, the grant alive`, () =>
    Effect.gen(function*() {
      const { later, refreshes, results } = yield* burstAtExpiry(true)
      assert.strictEqual(refreshes, 1)
      assert.isTrue(results.every((result) => result._tag === "Right"), "every caller got a token")
      const values = new Set(
        results.map((result) => result._tag === "Right" ? Redacted.value(result.right.accessToken) : "")
      )
      assert.strictEqual(values.size, 1, "one token for all callers of both instances")
      assert.strictEqual(later._tag, "Right", "a later refresh succeeds: the grant was not revoked")
    }))

  it.scoped("without the lock, the two instances both refresh and the provider revokes the grant (detected)", () =>
    Effect.gen(function*() {
      const { later, refreshes } = yield* burstAtExpiry(false, "2 seconds")
      assert.isAbove(refreshes, 1)
      assert.strictEqual(later._tag, "Left", "the reused refresh token made the provider revoke the grant")
    }))

  it.scoped("a holder whose session ended cannot write: the instance that took over keeps its write", () =>
    Effect.gen(function*() {
      /** A store and its lock on one pool of their own: one instance. */
      const storeAndLock = Effect.map(
        Layer.build(
          Layer.merge(SqlStore.layer({ tablePrefix: prefix }), SqlTokenLock.layer({ lockTimeout: "20 seconds" })).pipe(
            Layer.provide(TokenEncryption.layerPlaintext),
            Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl) })),
            Layer.orDie
          )
        ),
        (context) => ({
          store: Context.get(context, UserTokenStore.UserTokenStore),
          lock: Context.get(context, TokenLock.TokenLock)
        })
      )
      const a = yield* storeAndLock
      const b = yield* storeAndLock
      const user = uniqueUser("pg-fenced")
      const refreshTokenOf = Effect.map(
        b.store.get(user),
        (token) => Redacted.value(Option.getOrThrow(token).refreshToken!)
      )

      const [tokenA, tokenB, refused] = yield* a.lock.withLock(user)(Effect.gen(function*() {
        const tokenA = Option.getOrThrow(yield* TokenLock.CurrentLease).fencingToken
        yield* a.store.store(user, makeToken("a1"))
        // the session holding A's lock ends (a cut connection, a terminated backend): its lock goes with it
        yield* terminateHolder(user)
        const tokenB = yield* b.lock.withLock(user)(Effect.gen(function*() {
          yield* b.store.store(user, makeToken("b1"))
          return Option.getOrThrow(yield* TokenLock.CurrentLease).fencingToken
        }))
        const refused = yield* Effect.all([
          Effect.flip(a.store.store(user, makeToken("a2"))),
          Effect.flip(a.store.clear(user))
        ])
        return [tokenA, tokenB, refused] as const
      }))
      assert.isAbove(tokenB, tokenA, "the later holder has the greater fencing token")
      for (const error of refused) assert.isTrue(TokenLock.isLeaseLost(error), `refused with ${error.message}`)
      assert.strictEqual(yield* refreshTokenOf, "rt-b1", "B's write stands")
      // outside any lease, A's store writes as before (on its pool)
      yield* a.store.store(user, makeToken("a3"))
      assert.strictEqual(yield* refreshTokenOf, "rt-a3")
    }))

  it.scoped("the lock's session ends after the provider rotated the refresh token: stored under a new lease", () =>
    Effect.gen(function*() {
      let armed = false
      const { inner, provider, services } = yield* sessionDroppingInstance(() => {
        if (!armed) return false
        armed = false
        return true
      })
      const { user } = yield* signIn("pg-session-dropped").pipe(Effect.provide(services))
      const storeKey = CurrentUser.storeKey(user)
      const spent = Redacted.value(Option.getOrThrow(yield* inner.get(storeKey)).refreshToken!)
      yield* provider.resetCounters
      armed = true
      const logs: Array<string> = []
      const token = yield* Effect.flatMap(
        UserTokens.UserTokens,
        (tokens) => tokens.getFor(user, { forceRenewal: true })
      )
        .pipe(
          Effect.provide(services),
          Effect.provide(Logger.add(Logger.make(({ logLevel, message }) => {
            logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
          })))
        )
      assert.isFalse(armed, "the session was dropped during the write")
      // an operator sees both: the lease lost after the rotation, and the rotated token kept (no token in the text)
      assert.deepStrictEqual(logs, [
        "WARN The renewal lease was lost after the provider rotated the refresh token: storing it under a new lease",
        "INFO The rotated refresh token was stored under a new lease"
      ])
      assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), 1)
      const stored = Option.getOrThrow(yield* inner.get(storeKey, { resource: IdentityProvider.Resources.demoApi }))
      assert.strictEqual(Redacted.value(stored.accessToken!.accessToken), Redacted.value(token.accessToken))
      assert.notStrictEqual(Redacted.value(stored.refreshToken!), spent, "the rotated refresh token was stored")
      assert.isTrue((yield* provider.introspect(Redacted.value(stored.refreshToken!))).active, "the grant is alive")
    }))

  /**
   * An instance whose pool has 2 connections, 5 users renewing at once, and optionally every renewal's session
   * ended at its write (after the provider rotated): a renewal holds one connection, its lock's, so none waits
   * forever for a second one (its re-read of the store and, once its lease is lost, the lock taken again).
   */
  const renewalsBeyondThePool = (dropSessions: boolean) =>
    Effect.gen(function*() {
      const dropped = new Set<string>()
      const { inner, provider, services } = yield* sessionDroppingInstance((user) => {
        if (!dropSessions || dropped.has(user)) return false
        dropped.add(user)
        return true
      }, 2)
      const users = yield* Effect.forEach(
        Array.from({ length: 5 }, (_, i) => `pg-pool-${dropSessions ? "dropped" : "held"}-${i}`),
        (account) => Effect.map(signIn(account), ({ user }) => user)
      ).pipe(Effect.provide(services))
      const spent = yield* Effect.forEach(users, (user) =>
        Effect.map(inner.get(CurrentUser.storeKey(user)), (stored) =>
          Redacted.value(Option.getOrThrow(stored).refreshToken!)))
      yield* provider.resetCounters
      const renewed = yield* Effect.flatMap(UserTokens.UserTokens, (tokens) =>
        Effect.forEach(users, (user) =>
          tokens.getFor(user, { forceRenewal: true }), { concurrency: "unbounded" })).pipe(
          Effect.provide(services),
          Effect.timeoutFail({
            duration: "20 seconds",
            onTimeout: () =>
              "renewals still waiting after 20 s"
          }),
          Effect.either
        )
      assert.deepStrictEqual(renewed._tag, "Right", "every renewal finished")
      if (dropSessions) {
        assert.strictEqual(dropped.size, users.length, "every renewal's session was ended")
      }
      assert.strictEqual(yield* provider.tokenRequests({ grantType: "refresh_token" }), users.length)
      for (const [i, user] of users.entries()) {
        const stored = Option.getOrThrow(yield* inner.get(CurrentUser.storeKey(user)))
        assert.notStrictEqual(Redacted.value(stored.refreshToken!), spent[i], "the rotated refresh token was stored")
        assert.isTrue((yield* provider.introspect(Redacted.value(stored.refreshToken!))).active, "the grant is alive")
      }
    })

  it.scoped(
    "more renewals at once than the pool has connections: each holds one, all finish",
    () => renewalsBeyondThePool(false),
    60_000
  )

  it.scoped(
    "more renewals than connections, every session ended at its write: each stores under a new lease",
    () => renewalsBeyondThePool(true),
    60_000
  )

  it.scoped("the lock excludes other sessions, times out with a typed error, and fails on SQLite", () =>
    Effect.gen(function*() {
      const session = (lockTimeout: Duration.DurationInput) =>
        Layer.build(
          SqlTokenLock.layer({ lockTimeout }).pipe(
            Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl) })),
            Layer.orDie
          )
        )
      const a = yield* session("1 second")
      const b = yield* session("200 millis")
      const lockA = Context.get(a, TokenLock.TokenLock)
      const lockB = Context.get(b, TokenLock.TokenLock)
      const error = yield* lockA.withLock("same-key")(Effect.flip(lockB.withLock("same-key")(Effect.void)))
      assert.strictEqual(error._tag, "TokenStoreError")
      assert.include(error.message, "held it for longer than")
      // released afterwards: the other session gets it at once
      yield* lockB.withLock("same-key")(Effect.void)
      // other keys never wait
      yield* lockA.withLock("key-1")(lockB.withLock("key-2")(Effect.void))
      const sqlite = yield* Effect.flip(
        Layer.build(SqlTokenLock.layer().pipe(Layer.provide(SqliteClient.layer({ filename: ":memory:" }))))
      )
      assert.include(sqlite.message, "needs PostgreSQL")
    }))
})

TokenLockSuite.run(
  "SqlTokenLock on PostgreSQL",
  SqlTokenLock.layer().pipe(Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl) }))),
  { loseLease: (key) => Effect.asVoid(terminateHolder(key)) }
)
