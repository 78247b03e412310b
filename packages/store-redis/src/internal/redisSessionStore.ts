import { keyPart } from "@effect-atm/core/AccessToken"
import { Session } from "@effect-atm/core/Session"
import { SessionStore, SessionStoreError, type SessionStoreOperation } from "@effect-atm/core/SessionStore"
import * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Redis } from "ioredis"
import type { SessionStoreOptions } from "../RedisSessionStore.js"

const store = "redis"

const reasonOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : "unknown failure"

const call = <A>(operation: SessionStoreOperation, f: () => Promise<A>): Effect.Effect<A, SessionStoreError> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new SessionStoreError({ store, operation, reason: reasonOf(cause) })
  }).pipe(Effect.withSpan(`RedisSessionStore.${operation}`, { captureStackTrace: false }))

// One hash per session: d = the sealed session, u / p = the keys of its subject and sid index sets (so that removal
// can clean them without opening the session). A sorted set orders the sessions by expiry for `takeExpired`.
// Standalone Redis (or one hash slot): the scripts name keys found in the hash.

/** KEYS: session, expiry, subject index, sid index (or ""). ARGV: id, payload, expiresAt, ttl (ms). */
const setScript = `
redis.call("HSET", KEYS[1], "d", ARGV[2], "u", KEYS[3], "p", KEYS[4])
redis.call("PEXPIRE", KEYS[1], ARGV[4])
redis.call("ZADD", KEYS[2], ARGV[3], ARGV[1])
for i = 3, 4 do
  if KEYS[i] ~= "" then
    redis.call("SADD", KEYS[i], ARGV[1])
    redis.call("PEXPIRE", KEYS[i], ARGV[4], "NX")
    redis.call("PEXPIRE", KEYS[i], ARGV[4], "GT")
  end
end
return 1`

/** Removes a session and its index entries, returning its payload (or false). KEYS: session, expiry. ARGV: id. */
const removeBody = `
local function take(key, expiry, id)
  local fields = redis.call("HMGET", key, "d", "u", "p")
  redis.call("ZREM", expiry, id)
  if not fields[1] then return false end
  redis.call("DEL", key)
  if fields[2] and fields[2] ~= "" then redis.call("SREM", fields[2], id) end
  if fields[3] and fields[3] ~= "" then redis.call("SREM", fields[3], id) end
  return fields[1]
end`

const removeScript = `${removeBody}
return take(KEYS[1], KEYS[2], ARGV[1])`

/** KEYS: expiry. ARGV: now, limit, session key prefix. Returns id, payload, id, payload, … */
const takeExpiredScript = `${removeBody}
local ids = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local d = take(ARGV[3] .. id, KEYS[1], id)
  if d then
    table.insert(out, id)
    table.insert(out, d)
  end
end
return out`

/**
 * KEYS: claim. ARGV: until, now, ttl (ms). The value is the record's `until`: compared on the caller's clock, so
 * that expiry follows the Effect `Clock` like sessions do; Redis's own expiry only collects it.
 */
const claimScript = `
local held = redis.call("GET", KEYS[1])
if held and tonumber(held) > tonumber(ARGV[2]) then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[3])
return 1`

/** KEYS: claim. ARGV: until. Deletes the claim only if it is the one made with this `until`. */
const releaseScript = `
local held = redis.call("GET", KEYS[1])
if held and tonumber(held) == tonumber(ARGV[1]) then redis.call("DEL", KEYS[1]) end
return 1`

/** @internal */
export const make = (
  client: Redis,
  options: SessionStoreOptions,
  encryption: TokenEncryption.TokenEncryption["Type"]
): SessionStore["Type"] => {
  const prefix = options.prefix ?? "effect-atm:"
  const retention = Duration.toMillis(Duration.decode(options.retention ?? Duration.days(1)))
  const sessionPrefix = `${prefix}session:`
  const sessionKey = (id: string) => `${sessionPrefix}${id}`
  const expiryKey = `${prefix}sessions:expiry`
  const subjectKey = (subject: string) => `${prefix}sessions:sub:${keyPart(subject)}`
  const sidKey = (sid: string) => `${prefix}sessions:sid:${keyPart(sid)}`
  const claimKey = (key: string) => `${prefix}sessions:claim:${keyPart(key)}`
  const codec = TokenEncryption.codec(Session, encryption)
  const context = (id: string) => `session\u001d${id}`

  const decode = (operation: SessionStoreOperation) => (id: string, payload: string) =>
    codec.decode(payload, context(id)).pipe(
      Effect.mapError((error) => new SessionStoreError({ store, operation, reason: error.message }))
    )

  const find = (key: string) =>
    Effect.gen(function*() {
      const ids = yield* call("find", () => client.smembers(key))
      if (ids.length === 0) return []
      const payloads = yield* call("find", () => Promise.all(ids.map((id) => client.hget(sessionKey(id), "d"))))
      const now = yield* Clock.currentTimeMillis
      const found: Array<Session> = []
      const gone: Array<string> = []
      for (let i = 0; i < ids.length; i++) {
        const payload = payloads[i]
        if (payload === null || payload === undefined) {
          gone.push(ids[i]!)
          continue
        }
        const session = yield* decode("find")(ids[i]!, payload)
        if (session.expiresAt > now) found.push(session)
      }
      // index entries of sessions whose hash expired (Redis's own time to live)
      if (gone.length > 0) yield* Effect.ignore(call("find", () => client.srem(key, ...gone)))
      return found
    })

  return SessionStore.of({
    get: (id) =>
      Effect.gen(function*() {
        const payload = yield* call("get", () => client.hget(sessionKey(id), "d"))
        if (payload === null) return Option.none()
        const session = yield* decode("get")(id, payload)
        return session.expiresAt > (yield* Clock.currentTimeMillis) ? Option.some(session) : Option.none()
      }),
    set: (session) =>
      Effect.gen(function*() {
        const payload = yield* codec.encode(session, context(session.id))
        const now = yield* Clock.currentTimeMillis
        // kept `retention` past its expiry, for `takeExpired` to hand it to a sweeper
        const ttl = Math.max(1, session.expiresAt - now) + retention
        const sid = session.providerSessionId
        yield* call("set", () =>
          client.eval(
            setScript,
            4,
            sessionKey(session.id),
            expiryKey,
            subjectKey(session.subject),
            sid === undefined ? "" : sidKey(sid),
            session.id,
            payload,
            session.expiresAt,
            ttl
          ))
      }),
    remove: (id) =>
      Effect.gen(function*() {
        const payload = yield* call("remove", () => client.eval(removeScript, 2, sessionKey(id), expiryKey, id))
        return typeof payload === "string" ? Option.some(yield* decode("remove")(id, payload)) : Option.none()
      }),
    findBySubject: (subject) => find(subjectKey(subject)),
    findByProviderSession: (sid) => find(sidKey(sid)),
    takeExpired: (limit) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const reply = yield* call(
          "takeExpired",
          () => client.eval(takeExpiredScript, 1, expiryKey, now, limit, sessionPrefix) as Promise<Array<string>>
        )
        const taken: Array<Session> = []
        for (let i = 0; i + 1 < reply.length; i += 2) taken.push(yield* decode("takeExpired")(reply[i]!, reply[i + 1]!))
        return taken
      }),
    claimOnce: (key, until) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const claimed = yield* call(
          "claim",
          () => client.eval(claimScript, 1, claimKey(key), until, now, Math.max(1, until - now))
        )
        return claimed === 1
      }),
    releaseClaim: (key, until) =>
      Effect.asVoid(call("release", () => client.eval(releaseScript, 1, claimKey(key), until)))
  })
}
