/**
 * A user token store you write yourself: every user's tokens in one JSON file, kept in memory and written back
 * whole after each change (to a temporary file, then renamed over the old one, so that a crash never leaves half
 * a file). Enough for a single-instance app that must keep its users signed in across restarts, without a
 * database; and a template for your own store.
 *
 * What a `UserTokenStore` must do (check yours with `UserTokenStoreSuite.run` from `@effect-atm/testing`, as
 * `test/CustomStore.test.ts` does):
 *
 * - key tokens by the user key it is given (`CurrentUser.storeKey`) and the request parameters
 *   (`AccessToken.parametersKey`);
 * - keep ONE refresh token (and ID token, client id) per user, shared by the access tokens of all parameters:
 *   storing a token replaces them for every parameter, in the same write as its access token;
 * - `get`: `None` for an unknown user; `Some` without `accessToken` for a known user with no token for those
 *   parameters;
 * - `clear(user, params)` drops one access token; `clear(user)` everything the user has;
 * - fail with `TokenStoreError` (never a defect) when the storage fails or holds something unreadable.
 *
 * @since 0.1.0
 */
import { AccessToken, TokenEncryption, TokenError, UserToken, UserTokenStore } from "@effect-atm/core"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Path from "node:path"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The JSON file (created, with its directory, if missing). */
  readonly path: string
  /** How long a user's tokens are kept after their last write (the refresh token lifetime). Default: 14 days. */
  readonly timeToLive?: Duration.DurationInput | undefined
}

/** What the file holds: per user, the shared part and the access tokens, each encoded by a `TokenEncryption` codec. */
interface Document {
  readonly version: 1
  readonly users: Record<string, {
    readonly shared: string
    readonly access: Record<string, string>
    readonly expiresAt: number
  }>
}

const storeError = (operation: TokenError.StoreOperation) => (cause: { readonly message: string }) =>
  new TokenError.TokenStoreError({ store: "json-file", operation, reason: cause.message })

/**
 * Loads the file and returns the store. Tokens are encrypted when a `TokenEncryption` is in the context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const encryption = Option.getOrUndefined(yield* Effect.serviceOption(TokenEncryption.TokenEncryption))
    // the codecs seal each value bound to where it is stored: a value copied to another user does not open
    const sharedCodec = TokenEncryption.codec(UserToken.UserToken, encryption)
    const accessCodec = TokenEncryption.codec(AccessToken.AccessToken, encryption)
    const sharedContext = (user: string) => `user\u001d${user}`
    const accessContext = (user: string, params: string) => `access\u001d${user}\u001d${params}`
    const timeToLive = Duration.toMillis(Duration.decode(options.timeToLive ?? Duration.days(14)))

    const path = Path.resolve(options.path)
    yield* fs.makeDirectory(Path.dirname(path), { recursive: true }).pipe(Effect.mapError(storeError("connect")))
    let document: Document = { version: 1, users: {} }
    if (yield* fs.exists(path).pipe(Effect.mapError(storeError("connect")))) {
      const text = yield* fs.readFileString(path).pipe(Effect.mapError(storeError("connect")))
      document = yield* Effect.try({
        try: () => JSON.parse(text) as Document,
        catch: () =>
          new TokenError.TokenStoreError({
            store: "json-file",
            operation: "connect",
            reason: "not JSON",
            transient: false
          })
      })
    }

    // one writer at a time: each write reads the document, changes it, and saves it whole
    const semaphore = yield* Effect.makeSemaphore(1)
    const update = (
      operation: TokenError.StoreOperation,
      change: (users: Document["users"], now: number) => Document["users"]
    ) =>
      semaphore.withPermits(1)(
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const next: Document = { version: 1, users: change(live(document.users, now), now) }
          const temporary = `${path}.${process.pid}.tmp`
          yield* fs.writeFileString(temporary, JSON.stringify(next))
          yield* fs.rename(temporary, path)
          // only once it is on disk does the new state become visible to readers
          document = next
        }).pipe(Effect.mapError(storeError(operation)))
      )

    const decodeFailure = (error: TokenEncryption.TokenDecryptionError) => storeError("get")(error)

    return UserTokenStore.UserTokenStore.of({
      store: (user, token, params) =>
        Effect.gen(function*() {
          const paramsKey = AccessToken.parametersKey(params)
          const shared = yield* sharedCodec.encode(
            UserToken.shared(token),
            sharedContext(user)
          )
          const access = token.accessToken === undefined
            ? undefined
            : yield* accessCodec.encode(token.accessToken, accessContext(user, paramsKey))
          yield* update("store", (users, now) => ({
            ...users,
            [user]: {
              shared,
              access: access === undefined
                ? { ...users[user]?.access }
                : { ...users[user]?.access, [paramsKey]: access },
              expiresAt: now + timeToLive
            }
          }))
        }),
      get: (user, params) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const entry = document.users[user]
          if (entry === undefined || entry.expiresAt <= now) return Option.none()
          const paramsKey = AccessToken.parametersKey(params)
          const shared = yield* Effect.mapError(sharedCodec.decode(entry.shared, sharedContext(user)), decodeFailure)
          const stored = entry.access[paramsKey]
          const accessToken = stored === undefined
            ? undefined
            : yield* Effect.mapError(accessCodec.decode(stored, accessContext(user, paramsKey)), decodeFailure)
          return Option.some(UserToken.withAccessToken(shared, accessToken))
        }),
      clear: (user, params) =>
        update("clear", (users) => {
          const { [user]: entry, ...others } = users
          if (entry === undefined) return users
          if (params === undefined) return others
          const { [AccessToken.parametersKey(params)]: _dropped, ...access } = entry.access
          return { ...others, [user]: { ...entry, access } }
        })
    })
  })

/** Drops expired users (their refresh token is dead) whenever the document is written. */
const live = (users: Document["users"], now: number): Document["users"] => {
  const kept: Record<string, Document["users"][string]> = {}
  for (const [user, entry] of Object.entries(users)) {
    if (entry.expiresAt > now) kept[user] = entry
  }
  return kept
}

/**
 * The store as a layer (needs a `FileSystem`, e.g. `NodeFileSystem.layer`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<UserTokenStore.UserTokenStore, TokenError.TokenStoreError, FileSystem.FileSystem> =>
  Layer.effect(UserTokenStore.UserTokenStore, make(options))
