import { AccessToken, parametersKey } from "@effect-atm/core/AccessToken"
import { AccessTokenStore } from "@effect-atm/core/AccessTokenStore"
import * as ClusterEvents from "@effect-atm/core/ClusterEvents"
import { decodeDuration } from "@effect-atm/core/TokenClient"
import * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import { type StoreOperation, TokenStoreError } from "@effect-atm/core/TokenError"
import { TokenLock } from "@effect-atm/core/TokenLock"
import * as UserTokenModule from "@effect-atm/core/UserToken"
import { UserToken } from "@effect-atm/core/UserToken"
import { UserTokenStore } from "@effect-atm/core/UserTokenStore"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { Redis, type RedisOptions } from "ioredis"
import * as Crypto from "node:crypto"
import * as Os from "node:os"
import type { Options as ClusterEventsOptions } from "../RedisClusterEvents.js"
import type { ConnectionOptions } from "../RedisConnection.js"
import type { StoreOptions } from "../RedisStore.js"
import type { LockOptions } from "../RedisTokenLock.js"

/** @internal */
export const defaults = {
  url: "redis://127.0.0.1:6379",
  prefix: "effect-atm:",
  timeToLive: Duration.days(14),
  commandTimeout: Duration.seconds(2),
  connectTimeout: Duration.seconds(5),
  leaseTime: Duration.seconds(10),
  lockTimeout: Duration.seconds(30)
} as const

const store = "redis"

const reasonOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : "unknown failure"

/** Runs one ioredis call as an Effect, its failure typed. */
const call = <A>(operation: StoreOperation, f: () => Promise<A>): Effect.Effect<A, TokenStoreError> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new TokenStoreError({ store, operation, reason: reasonOf(cause) })
  })

/** @internal */
export const makeConnection = (options: ConnectionOptions = {}): Effect.Effect<Redis, TokenStoreError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const url = options.url === undefined
        ? options.options === undefined ? defaults.url : undefined
        : typeof options.url === "string"
        ? options.url
        : Redacted.value(options.url)
      const redisOptions: RedisOptions = {
        // Fail fast rather than hang: no queueing while disconnected, a bound on every command, and no replay of
        // unanswered commands after a reconnect (a late replay could write back a refresh token already rotated).
        enableOfflineQueue: false,
        autoResendUnfulfilledCommands: false,
        maxRetriesPerRequest: 1,
        commandTimeout: Duration.toMillis(Duration.decode(options.commandTimeout ?? defaults.commandTimeout)),
        connectTimeout: Duration.toMillis(Duration.decode(options.connectTimeout ?? defaults.connectTimeout)),
        // keep reconnecting while the layer lives: work resumes when Redis is back
        retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
        ...options.options,
        lazyConnect: true
      }
      const client = url === undefined ? new Redis(redisOptions) : new Redis(url, redisOptions)
      // errors surface on the commands that fail; without a listener ioredis would print each reconnect attempt
      client.on("error", () => {})
      return call("connect", () => client.connect()).pipe(
        Effect.as(client),
        Effect.tapError(() => Effect.sync(() => client.disconnect()))
      )
    }),
    (client) =>
      call("connect", () => client.quit()).pipe(
        Effect.catchAll(() => Effect.sync(() => client.disconnect()))
      )
  )

const userContext = (user: string) => `user\u001d${user}`
const accessContext = (user: string, params: string) => `access\u001d${user}\u001d${params}`
const sharedField = "_"
const accessField = (params: string) => `a:${params}`

const decodeFailure = (error: TokenEncryption.TokenDecryptionError) =>
  new TokenStoreError({ store, operation: "get", reason: error.message, transient: false })

/** Fails with the first error a MULTI/EXEC reply holds. */
const checkExec = (operation: StoreOperation) => (replies: Array<[Error | null, unknown]> | null) =>
  replies === null
    ? Effect.fail(new TokenStoreError({ store, operation, reason: "the transaction was aborted" }))
    : Effect.forEach(replies, ([error]) =>
      error === null ? Effect.void : Effect.fail(new TokenStoreError({ store, operation, reason: error.message })), {
      discard: true
    })

/** The store's options, strictly: a bad time to live fails the layer naming the option. @internal */
export const checkStoreOptions = (options: StoreOptions): Effect.Effect<void, TokenStoreError> =>
  Effect.suspend(() => {
    const decoded = decodeDuration(options.timeToLive ?? defaults.timeToLive)
    if (Either.isRight(decoded) && Duration.toMillis(decoded.right) > 0) return Effect.void
    return Effect.fail(
      new TokenStoreError({
        store: "redis",
        operation: "start",
        transient: false,
        reason: `the option timeToLive ${
          Either.isLeft(decoded) ? decoded.left : "must be longer than zero (the provider's refresh token lifetime)"
        }`
      })
    )
  })

/** @internal */
export const makeUserTokenStore = (
  client: Redis,
  options: StoreOptions,
  encryption: TokenEncryption.TokenEncryption["Type"] | undefined
): UserTokenStore["Type"] => {
  const prefix = options.prefix ?? defaults.prefix
  const timeToLive = Math.max(1, Duration.toMillis(Duration.decode(options.timeToLive ?? defaults.timeToLive)))
  const keyOf = (user: string) => `${prefix}user:${user}`
  const userCodec = TokenEncryption.codec(UserToken, encryption)
  const accessCodec = TokenEncryption.codec(AccessToken, encryption)

  return UserTokenStore.of({
    distributed: true,
    store: (user, token, params) =>
      Effect.gen(function*() {
        const paramsKey = parametersKey(params)
        const shared = yield* userCodec.encode(
          UserTokenModule.shared(token),
          userContext(user)
        )
        const fields: Array<string> = [sharedField, shared]
        if (token.accessToken !== undefined) {
          fields.push(
            accessField(paramsKey),
            yield* accessCodec.encode(token.accessToken, accessContext(user, paramsKey))
          )
        }
        const key = keyOf(user)
        // one hash per user, written in one transaction: the refresh token and the access token land together,
        // and the entry lives `timeToLive` after its last write (with its refresh token)
        yield* call("store", () => client.multi().hset(key, ...fields).pexpire(key, timeToLive).exec()).pipe(
          Effect.flatMap(checkExec("store"))
        )
      }).pipe(Effect.withSpan("RedisStore.store", { captureStackTrace: false })),
    get: (user, params) =>
      Effect.gen(function*() {
        const paramsKey = parametersKey(params)
        const [sharedValue, accessValue] = yield* call(
          "get",
          () => client.hmget(keyOf(user), sharedField, accessField(paramsKey))
        )
        if (sharedValue === null || sharedValue === undefined) return Option.none()
        const shared = yield* Effect.mapError(userCodec.decode(sharedValue, userContext(user)), decodeFailure)
        const accessToken = accessValue === null || accessValue === undefined
          ? undefined
          : yield* Effect.mapError(accessCodec.decode(accessValue, accessContext(user, paramsKey)), decodeFailure)
        return Option.some(
          UserTokenModule.withAccessToken(shared, accessToken)
        )
      }).pipe(Effect.withSpan("RedisStore.get", { captureStackTrace: false })),
    clear: (user, params) =>
      (params === undefined
        ? call("clear", () => client.del(keyOf(user)))
        : call("clear", () => client.hdel(keyOf(user), accessField(parametersKey(params))))).pipe(
          Effect.asVoid,
          Effect.withSpan("RedisStore.clear", { captureStackTrace: false })
        )
  })
}

const fingerprintLength = 43 // SHA-256, base64url

const fingerprint = (token: AccessToken): string =>
  Crypto.createHash("sha256").update(Redacted.value(token.accessToken)).digest("base64url")

const removeIfScript = `
local value = redis.call("GET", KEYS[1])
if value and string.sub(value, 1, ${fingerprintLength}) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`

/** @internal */
export const makeAccessTokenStore = (
  client: Redis,
  options: StoreOptions,
  encryption: TokenEncryption.TokenEncryption["Type"] | undefined
): AccessTokenStore["Type"] => {
  const prefix = options.prefix ?? defaults.prefix
  const keyOf = (key: string) => `${prefix}cc:${key}`
  const context = (key: string) => `client\u001d${key}`
  const codec = TokenEncryption.codec(AccessToken, encryption)

  return AccessTokenStore.of({
    distributed: true,
    get: (key) =>
      Effect.gen(function*() {
        const value = yield* call("get", () => client.get(keyOf(key)))
        if (value === null) return Option.none()
        // `<fingerprint>:<token>`: the fingerprint lets `remove` compare tokens in Redis without decrypting
        const token = yield* Effect.mapError(
          codec.decode(value.slice(fingerprintLength + 1), context(key)),
          decodeFailure
        )
        return Option.some(token)
      }),
    set: (key, token) =>
      Effect.gen(function*() {
        const ttl = token.expiresAt - (yield* Clock.currentTimeMillis)
        if (ttl <= 0) {
          yield* call("set", () => client.del(keyOf(key)))
          return
        }
        const value = `${fingerprint(token)}:${yield* codec.encode(token, context(key))}`
        // the entry expires with the token: instances never share a dead token
        yield* call("set", () => client.set(keyOf(key), value, "PX", Math.ceil(ttl)))
      }),
    remove: (key, ifToken) =>
      (ifToken === undefined
        ? call("remove", () => client.del(keyOf(key)))
        : call("remove", () => client.eval(removeIfScript, 1, keyOf(key), fingerprint(ifToken)))).pipe(Effect.asVoid)
  })
}

const renewScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`

const releaseScript = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`

/** @internal */
export const makeTokenLock = (client: Redis, options: LockOptions): TokenLock["Type"] => {
  const prefix = options.prefix ?? defaults.prefix
  const leaseTime = Math.max(10, Duration.toMillis(Duration.decode(options.leaseTime ?? defaults.leaseTime)))
  const lockTimeout = Duration.toMillis(Duration.decode(options.lockTimeout ?? defaults.lockTimeout))
  const keyOf = (key: string) => `${prefix}lock:${key}`
  // who holds a lease is visible in Redis (for operators): host, process, and a random part per acquisition
  const ownerPrefix = `${Os.hostname()}:${process.pid}:`

  /** Takes the lease, waiting (polling with a growing pause) while another owner holds it. */
  const acquire = (key: string, owner: string) =>
    Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      let pause = 5
      while (true) {
        const taken = yield* call("lock", () => client.set(key, owner, "PX", leaseTime, "NX"))
        if (taken === "OK") return
        if ((yield* Clock.currentTimeMillis) - started >= lockTimeout) {
          return yield* new TokenStoreError({
            store,
            operation: "lock",
            reason: `another instance held the renewal lease for more than ${lockTimeout} ms`
          })
        }
        yield* Effect.sleep(Duration.millis(pause + Math.random() * pause))
        pause = Math.min(pause * 2, 100)
      }
    })

  /** Extends the lease while the renewal runs, so that only a holder that stopped (crashed) loses it. */
  const heartbeat = (key: string, owner: string) =>
    Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(leaseTime / 3))
        const renewed = yield* call("lock", () => client.eval(renewScript, 1, key, owner, leaseTime)).pipe(
          Effect.catchAll((error) => Effect.as(Effect.logWarning("Could not extend a renewal lease", error.message), 1))
        )
        if (renewed === 0) {
          return yield* Effect.logWarning(
            "A renewal lease expired before the renewal finished: another instance may renew the same key"
          )
        }
      }
    })

  const release = (key: string, owner: string) =>
    call("lock", () => client.eval(releaseScript, 1, key, owner)).pipe(
      // the lease runs out by itself
      Effect.catchAll((error) => Effect.logDebug("Could not release a renewal lease", error.message))
    )

  return TokenLock.of({
    distributed: true,
    withLock: (name) => (effect) =>
      Effect.suspend(() => {
        const key = keyOf(name)
        const owner = `${ownerPrefix}${Crypto.randomUUID()}`
        // A failed attempt (Redis away) is released in the background: the caller gets its error at once, and the
        // release follows the SET on the connection, so a SET that timed out yet landed is undone right after.
        let failed = false
        return acquire(key, owner).pipe(
          Effect.tapError(() => Effect.sync(() => failed = true)),
          Effect.zipRight(
            Effect.flatMap(
              Effect.fork(heartbeat(key, owner)),
              (fiber) => Effect.ensuring(effect, Fiber.interrupt(fiber))
            )
          ),
          // compare-and-delete: harmless when the lease was never taken (interrupted while waiting) or taken over
          Effect.ensuring(
            Effect.suspend(() => failed ? Effect.asVoid(Effect.forkDaemon(release(key, owner))) : release(key, owner))
          ),
          Effect.withSpan("RedisTokenLock.withLock")
        )
      })
  })
}

/** @internal */
export const makeClusterEvents = (client: Redis, options: ClusterEventsOptions) => {
  const channel = `${options.prefix ?? defaults.prefix}events`
  return ClusterEvents.make({
    name: store,
    distributed: true,
    publish: (payload) => Effect.asVoid(call("publish", () => client.publish(channel, payload))),
    subscribe: ({ onMessage, onResubscribed }) =>
      Effect.gen(function*() {
        // subscribed once by hand (not ioredis' autoResubscribe): `Resubscribed` is delivered when Redis confirms
        const subscriber = client.duplicate({ autoResubscribe: false })
        subscriber.on("error", () => {})
        subscriber.on("message", (from: string, payload: string) => {
          if (from === channel) onMessage(payload)
        })
        yield* Effect.acquireRelease(
          call("subscribe", async () => {
            await subscriber.connect()
            await subscriber.subscribe(channel)
          }).pipe(Effect.tapError(() => Effect.sync(() => subscriber.disconnect()))),
          () => Effect.promise(() => subscriber.quit().catch(() => subscriber.disconnect()))
        )
        let lost = false
        subscriber.on("close", () => lost = true)
        subscriber.on("ready", () => {
          if (!lost) return
          lost = false
          subscriber.subscribe(channel).then(onResubscribed, () => subscriber.disconnect(true))
        })
      })
  })
}
