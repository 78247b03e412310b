import { AccessToken, parametersKey } from "@effect-atm/core/AccessToken"
import { AccessTokenStore } from "@effect-atm/core/AccessTokenStore"
import * as ClusterEvents from "@effect-atm/core/ClusterEvents"
import { decodeDuration } from "@effect-atm/core/TokenClient"
import * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import { type StoreOperation, TokenStoreError } from "@effect-atm/core/TokenError"
import * as TokenLock from "@effect-atm/core/TokenLock"
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
    Effect.flatMap(
      Effect.all([
        durationOption(
          "commandTimeout",
          options.commandTimeout,
          defaults.commandTimeout,
          "how long a command may take"
        ),
        durationOption(
          "connectTimeout",
          options.connectTimeout,
          defaults.connectTimeout,
          "how long connecting may take"
        )
      ]),
      ([commandTimeout, connectTimeout]) => {
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
          commandTimeout: Math.max(1, Math.ceil(Duration.toMillis(commandTimeout))),
          connectTimeout: Math.max(1, Math.ceil(Duration.toMillis(connectTimeout))),
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
      }
    ),
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

/**
 * A duration option, strictly (see `TokenClient.decodeDuration`): a bad one fails the layer with a `TokenStoreError`
 * naming the option. `positive`: zero is refused too, saying why the option needs a length.
 *
 * @internal
 */
export const durationOption = (
  name: string,
  input: Duration.DurationInput | undefined,
  fallback: Duration.Duration,
  positive?: string
): Effect.Effect<Duration.Duration, TokenStoreError> =>
  Effect.suspend(() => {
    const decoded = decodeDuration(input ?? fallback)
    if (Either.isRight(decoded) && (positive === undefined || Duration.toMillis(decoded.right) > 0)) {
      return Effect.succeed(decoded.right)
    }
    return Effect.fail(
      new TokenStoreError({
        store: "redis",
        operation: "start",
        transient: false,
        reason: `the option ${name} ${Either.isLeft(decoded) ? decoded.left : `must be longer than zero (${positive})`}`
      })
    )
  })

/** The store's options, strictly: a bad time to live fails the layer naming the option. @internal */
export const checkStoreOptions = (options: StoreOptions): Effect.Effect<void, TokenStoreError> =>
  Effect.asVoid(
    durationOption("timeToLive", options.timeToLive, defaults.timeToLive, "the provider's refresh token lifetime")
  )

/** The lock's options, strictly. @internal */
export const checkLockOptions = (options: LockOptions): Effect.Effect<void, TokenStoreError> =>
  Effect.asVoid(Effect.all([
    durationOption("leaseTime", options.leaseTime, defaults.leaseTime, "how long a lease lasts unless extended"),
    durationOption("lockTimeout", options.lockTimeout, defaults.lockTimeout)
  ]))

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
        yield* fencedWrite(
          client,
          call("store", () => client.multi().hset(key, ...fields).pexpire(key, timeToLive).exec()).pipe(
            Effect.flatMap(checkExec("store"))
          ),
          (lockKey, lease) =>
            call("store", () => client.eval(fencedStoreScript, 2, key, lockKey, lease, timeToLive, ...fields)).pipe(
              Effect.map((written) => written === 1 ? undefined : "lost" as const)
            )
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
    clear: (user, params) => {
      const field = params === undefined ? "" : accessField(parametersKey(params))
      return fencedWrite(
        client,
        field === ""
          ? Effect.asVoid(call("clear", () => client.del(keyOf(user))))
          : Effect.asVoid(call("clear", () => client.hdel(keyOf(user), field))),
        (lockKey, lease) =>
          call("clear", () => client.eval(fencedClearScript, 2, keyOf(user), lockKey, lease, field)).pipe(
            Effect.map((done) => done === 1 ? undefined : "lost" as const)
          )
      ).pipe(Effect.withSpan("RedisStore.clear", { captureStackTrace: false }))
    }
  })
}

// The fenced writes: made only while KEYS[2], the renewal lease's lock key, holds ARGV[1], the writer's lease.
const fencedStoreScript = `
if redis.call("GET", KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call("HSET", KEYS[1], unpack(ARGV, 3))
redis.call("PEXPIRE", KEYS[1], ARGV[2])
return 1`

const fencedClearScript = `
if redis.call("GET", KEYS[2]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == "" then
  redis.call("DEL", KEYS[1])
else
  redis.call("HDEL", KEYS[1], ARGV[2])
end
return 1`

const fencedSetScript = `
if redis.call("GET", KEYS[2]) ~= ARGV[1] then
  return 0
end
if ARGV[3] == "0" then
  redis.call("DEL", KEYS[1])
else
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
end
return 1`

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
        const ttl = Math.max(0, Math.ceil(token.expiresAt - (yield* Clock.currentTimeMillis)))
        // the entry expires with the token: instances never share a dead token
        const value = ttl === 0 ? "" : `${fingerprint(token)}:${yield* codec.encode(token, context(key))}`
        yield* fencedWrite(
          client,
          ttl === 0
            ? Effect.asVoid(call("set", () => client.del(keyOf(key))))
            : Effect.asVoid(call("set", () => client.set(keyOf(key), value, "PX", ttl))),
          (lockKey, lease) =>
            call("set", () => client.eval(fencedSetScript, 2, keyOf(key), lockKey, lease, value, ttl)).pipe(
              Effect.map((done) => done === 1 ? undefined : "lost" as const)
            )
        )
      }),
    remove: (key, ifToken) =>
      TokenLock.fenced(
        ifToken === undefined
          ? call("remove", () => client.del(keyOf(key)))
          : call("remove", () => client.eval(removeIfScript, 1, keyOf(key), fingerprint(ifToken)))
      ).pipe(Effect.asVoid)
  })
}

/** What a Redis lease adds to `TokenLock.Lease`: a store on the same connection checks it in its write script. */
const RedisLeaseId: unique symbol = Symbol.for("@effect-atm/store-redis/RedisLease")

interface RedisLeaseData {
  readonly client: Redis
  /** The lock's Redis key, and the value it holds while this lease is held. */
  readonly lockKey: string
  readonly value: string
  /** Why the lease is known lost (an extension failed or found it gone), once it is. */
  lost: string | undefined
  /** Until when Redis keeps it at least: counted from before the last successful `SET`/extension was sent. */
  expiresAt: number
}

interface RedisLease extends TokenLock.Lease {
  readonly [RedisLeaseId]: RedisLeaseData
}

/** The current fiber's lease when it is one of this connection's: its writes can be fenced in Redis itself. */
const redisLeaseOf = (client: Redis): Effect.Effect<RedisLeaseData | undefined> =>
  Effect.map(TokenLock.CurrentLease, (lease) => {
    if (lease._tag === "None" || !(RedisLeaseId in lease.value)) return undefined
    const data = (lease.value as RedisLease)[RedisLeaseId]
    return data.client === client ? data : undefined
  })

const localCheck = (lease: RedisLeaseData, now: number): string | undefined =>
  lease.lost ?? (now >= lease.expiresAt ? "it ran out before it was extended" : undefined)

const lostInRedis = "Redis no longer holds it for this instance"

/**
 * Runs a store write guarded by the current lease: when the lease is this connection's, the write is a script that
 * checks the lock key first (`fencedScript` gets the key and the value to compare, and answers "lost" when they
 * differ); any other lease is checked by `TokenLock.fenced` before the plain write.
 */
const fencedWrite = <A>(
  client: Redis,
  unfenced: Effect.Effect<A, TokenStoreError>,
  fencedScript: (lockKey: string, value: string) => Effect.Effect<A | "lost", TokenStoreError>
): Effect.Effect<A, TokenStoreError> =>
  Effect.flatMap(redisLeaseOf(client), (lease) => {
    if (lease === undefined) return TokenLock.fenced(unfenced)
    // No local verdict here: the script's check is atomic with the write and is the only one that counts. An
    // extension that failed while Redis restarted leaves the lease in doubt, not lost; refusing the write on that
    // doubt would throw away a refresh token the provider has just rotated, although nobody else took the lease.
    return Effect.flatMap(fencedScript(lease.lockKey, lease.value), (result) =>
      result === "lost"
        ? Effect.fail(TokenLock.leaseLost({ store, reason: lostInRedis }))
        : Effect.succeed(result))
  })

/** Takes the lease if it is free, with the next fencing token (the value is `<token>:<owner>`); else 0. */
const acquireScript = `
if redis.call("EXISTS", KEYS[1]) == 1 then
  return 0
end
local token = redis.call("INCR", KEYS[2])
redis.call("SET", KEYS[1], token .. ":" .. ARGV[1], "PX", ARGV[2])
return token`

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
export const makeTokenLock = (client: Redis, options: LockOptions): TokenLock.TokenLock["Type"] => {
  const prefix = options.prefix ?? defaults.prefix
  const leaseTime = Math.max(10, Duration.toMillis(Duration.decode(options.leaseTime ?? defaults.leaseTime)))
  const lockTimeout = Duration.toMillis(Duration.decode(options.lockTimeout ?? defaults.lockTimeout))
  const keyOf = (key: string) => `${prefix}lock:${key}`
  // one counter for every key of the prefix: each acquisition's fencing token is greater than any before it
  const fenceKey = `${prefix}lock-fencing-token`
  // who holds a lease is visible in Redis (for operators): host, process, and a random part per acquisition
  const ownerPrefix = `${Os.hostname()}:${process.pid}:`

  /** Takes the lease, waiting (polling with a growing pause) while another owner holds it. */
  const acquire = (key: string, owner: string) =>
    Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      let pause = 5
      while (true) {
        const sent = yield* Clock.currentTimeMillis
        const token = yield* call("lock", () => client.eval(acquireScript, 2, key, fenceKey, owner, leaseTime))
        if (typeof token === "number" && token > 0) return { token, sent }
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

  /**
   * Extends the lease while the renewal runs, so that only a holder that stopped (crashed, stalled) loses it. An
   * extension that fails or finds the lease gone marks it lost: the renewal's next fenced step fails.
   */
  const heartbeat = (lease: RedisLeaseData) =>
    Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(leaseTime / 3))
        const sent = yield* Clock.currentTimeMillis
        const renewed = yield* call("lock", () => client.eval(renewScript, 1, lease.lockKey, lease.value, leaseTime))
          .pipe(Effect.either)
        if (renewed._tag === "Right" && renewed.right === 1) {
          lease.expiresAt = sent + leaseTime
          continue
        }
        lease.lost = renewed._tag === "Left"
          ? `Redis did not extend it: ${renewed.left.reason}`
          : "it ran out before it was extended"
        return yield* Effect.logWarning(
          "A renewal lease was lost before the renewal finished: the renewal stops before it writes",
          lease.lost
        )
      }
    })

  const release = (key: string, value: string) =>
    call("lock", () => client.eval(releaseScript, 1, key, value)).pipe(
      // the lease runs out by itself
      Effect.catchAll((error) => Effect.logDebug("Could not release a renewal lease", error.message))
    )

  const makeLease = (name: string, data: RedisLeaseData, token: number, acquiredAt: number): RedisLease => ({
    key: name,
    fencingToken: token,
    acquiredAt,
    ensureHeld: Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const lost = localCheck(data, now)
      if (lost !== undefined) return Effect.fail(TokenLock.leaseLost({ store, reason: lost }))
      return Effect.matchEffect(call("lock", () => client.get(data.lockKey)), {
        // a lease Redis cannot confirm is as good as lost: another instance may hold it when Redis is back
        onFailure: (error) =>
          Effect.fail(
            TokenLock.leaseLost({ store, reason: data.lost ??= `Redis could not confirm it: ${error.reason}` })
          ),
        onSuccess: (value) =>
          value === data.value ? Effect.void : Effect.fail(TokenLock.leaseLost({ store, reason: lostInRedis }))
      })
    }),
    [RedisLeaseId]: data
  })

  return TokenLock.TokenLock.of({
    distributed: true,
    withLock: (name) => (effect) =>
      Effect.suspend(() => {
        const key = keyOf(name)
        const owner = `${ownerPrefix}${Crypto.randomUUID()}`
        // what the lock key holds once taken
        let value = ""
        // A failed attempt (Redis away) is released in the background: the caller gets its error at once, and the
        // release follows the script on the connection, so a lease taken by a script that timed out yet ran is
        // undone right after. Its value is unknown then: the release compares with the owner's prefix.
        let failed = false
        return acquire(key, owner).pipe(
          Effect.tapError(() => Effect.sync(() => failed = true)),
          Effect.flatMap(({ sent, token }) => {
            value = `${token}:${owner}`
            const data: RedisLeaseData = { client, lockKey: key, value, lost: undefined, expiresAt: sent + leaseTime }
            return Effect.flatMap(Effect.fork(heartbeat(data)), (fiber) =>
              Effect.ensuring(
                Effect.provideService(effect, TokenLock.CurrentLease, Option.some(makeLease(name, data, token, sent))),
                Fiber.interrupt(fiber)
              ))
          }),
          // compare-and-delete: harmless when the lease was never taken (interrupted while waiting) or taken over
          Effect.ensuring(
            Effect.suspend(() =>
              failed
                ? Effect.asVoid(Effect.forkDaemon(releaseOwned(key, owner)))
                : value === ""
                ? releaseOwned(key, owner) // interrupted while waiting: a script in flight may still take it
                : release(key, value)
            )
          ),
          Effect.withSpan("RedisTokenLock.withLock")
        )
      })
  })

  /** Deletes the lease if its value ends with this owner (its fencing token unknown to the caller). */
  function releaseOwned(key: string, owner: string) {
    return call("lock", () => client.eval(releaseOwnedScript, 1, key, owner)).pipe(
      Effect.catchAll((error) => Effect.logDebug("Could not release a renewal lease", error.message))
    )
  }
}

const releaseOwnedScript = `
local value = redis.call("GET", KEYS[1])
if value and string.sub(value, -string.len(ARGV[1])) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`

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
