/**
 * P8, in a child process of its own (`node --expose-gc --import tsx`): the heap an in-memory `UserTokenStore` takes
 * for `USERS` users (default 100,000), each with a realistic token (see `storesTokens.ts`), and what those bytes are.
 * Sends a `MemoryReport` to the parent over IPC (or prints it without one). With `KEEP_ID_TOKEN=true` each user also
 * has an ID token, as `UserTokens` stores them with `keepIdToken: true`; by default it stores none.
 *
 * Steps, each measured as `heapUsed` after full collections: the ID token strings; the access and refresh token
 * strings; the user keys (UUIDs); the library's token objects around the strings (`UserToken`, `AccessToken`, a
 * `Redacted` per secret, their numbers), held in an array; then every user stored and the array dropped, so that
 * the store alone holds it all (what it adds is its own structure); then every user read once.
 */
import { CurrentUser, UserTokenStore } from "@effect-atm/core"
import type { UserToken } from "@effect-atm/core"
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import { flat, params, type RawSecrets, rawSecrets, userToken } from "./storesTokens.js"

export interface MemoryReport {
  readonly users: number
  /** whether each user's token held an ID token (`KEEP_ID_TOKEN=true`) */
  readonly keepIdToken: boolean
  /** heap of the store and everything it holds (tokens, user keys, entries), bytes */
  readonly storeBytes: number
  /** the same after one `get` of every user */
  readonly storeBytesAfterReads: number
  /** heap of the raw token strings alone (access, refresh, ID token), bytes */
  readonly rawTokenBytes: number
  /** heap of the ID token strings alone, bytes (part of `rawTokenBytes`; 0 without `KEEP_ID_TOKEN`) */
  readonly idTokenBytes: number
  /** heap of the user keys alone, bytes */
  readonly userKeyBytes: number
  /** the token objects around the strings: `UserToken`, `AccessToken`, `Redacted` ×3, numbers, bytes */
  readonly tokenObjectBytes: number
  /** what the store adds: its map, an entry per user, the entry's expiry, bytes */
  readonly storeStructureBytes: number
  /** characters of the raw token strings (one byte each in V8) */
  readonly rawTokenChars: number
  readonly storeMillis: number
  readonly heapUsedAfter: number
}

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with --expose-gc")

const heap = () => {
  for (let i = 0; i < 4; i++) gc()
  return process.memoryUsage().heapUsed
}

const users = Number(process.env.USERS ?? 100_000)
const keepIdToken = process.env.KEEP_ID_TOKEN === "true"

const fill = (
  store: UserTokenStore.UserTokenStore["Type"],
  keys: ReadonlyArray<string>,
  secrets: (i: number) => RawSecrets
) => {
  const now = Date.now()
  for (let i = 0; i < keys.length; i++) Effect.runSync(store.store(keys[i]!, userToken(secrets(i), now, false), params))
}

/** A user's store key: a subject (a UUID, flat as if parsed from an ID token) without a session. */
const userKey = () => CurrentUser.storeKey(new CurrentUser.User({ subject: flat(Crypto.randomUUID()) }))

// warm up every code path (JIT code lives on the heap too), then let it all go: in a function, so that nothing of
// it is left in the module's scope when the first measurement is taken
const warmUp = () => {
  const scratch = UserTokenStore.makeMemory()
  const keys = Array.from({ length: 2_000 }, userKey)
  fill(scratch, keys, () => rawSecrets())
  for (const key of keys) Effect.runSync(scratch.get(key, params))
}
warmUp()

// every container exists before the first measurement: only the strings and the library's objects are measured
const strings: Array<string> = new Array(users * 3).fill("")
const keys: Array<string> = new Array(users).fill("")
const tokens: Array<UserToken.UserToken | undefined> = new Array(users).fill(undefined)
const store = UserTokenStore.makeMemory({ capacity: users })
let rawTokenChars = 0

const h0 = heap()
for (let i = 0; i < users; i++) {
  const s = rawSecrets()
  if (keepIdToken) strings[3 * i + 2] = s.idToken!
  rawTokenChars += s.accessToken.length + s.refreshToken.length + (keepIdToken ? s.idToken!.length : 0)
}
const hId = heap()
for (let i = 0; i < users; i++) {
  const s = rawSecrets()
  strings[3 * i] = s.accessToken
  strings[3 * i + 1] = s.refreshToken
}
const h1 = heap()
for (let i = 0; i < users; i++) keys[i] = userKey()
const h2 = heap()
const now = Date.now()
for (let i = 0; i < users; i++) {
  tokens[i] = userToken(
    {
      accessToken: strings[3 * i]!,
      refreshToken: strings[3 * i + 1]!,
      ...(keepIdToken ? { idToken: strings[3 * i + 2]! } : {})
    },
    now,
    false
  )
}
// the tokens hold the strings now; the raw references go
strings.fill("")
const hTokens = heap()
const started = performance.now()
for (let i = 0; i < users; i++) Effect.runSync(store.store(keys[i]!, tokens[i]!, params))
const storeMillis = performance.now() - started
// the store holds the tokens now; the references go
tokens.fill(undefined)
const h3 = heap()
// every user read once
for (let i = 0; i < users; i++) {
  const found = Effect.runSync(store.get(keys[i]!, params))
  if (found._tag !== "Some" || found.value.accessToken === undefined) throw new Error("the store lost a user")
}
const h4 = heap()
// everything measured stays reachable until here (V8 collects what a frame no longer uses)
if (
  strings.length !== users * 3 || tokens.length !== users ||
  Effect.runSync(store.get(keys[0]!, params))._tag !== "Some"
) {
  throw new Error("the store lost a user")
}

const report: MemoryReport = {
  users,
  keepIdToken,
  storeBytes: h3 - h0,
  storeBytesAfterReads: h4 - h0,
  rawTokenBytes: h1 - h0,
  idTokenBytes: hId - h0,
  userKeyBytes: h2 - h1,
  tokenObjectBytes: hTokens - h2,
  storeStructureBytes: h3 - hTokens,
  rawTokenChars,
  storeMillis,
  heapUsedAfter: h3
}

if (process.send) process.send(report, () => process.exit(0))
else console.log(JSON.stringify(report, null, 2))
