import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { AccessToken, parametersKey, renewAt, type TokenRequestOptions } from "../AccessToken.js"
import * as CurrentUser from "../CurrentUser.js"
import * as DPoP from "../DPoP.js"
import type { OidcEvents } from "../OidcEvents.js"
import * as TokenClient from "../TokenClient.js"
import { Grant, TokenEndpoint } from "../TokenEndpoint.js"
import { type NoCurrentUser, SignInRequired, type TokenEndpointError, type TokenStoreError } from "../TokenError.js"
import { isLeaseLost, TokenLock } from "../TokenLock.js"
import * as TokenMetrics from "../TokenMetrics.js"
import { UserToken } from "../UserToken.js"
import type { Options, UserTokenError, UserTokens } from "../UserTokens.js"
import { discover, renewalLock } from "./deployment.js"
import { clockOf, InlineHit } from "./inlineHit.js"
import { userTokenKey } from "./keys.js"
import * as validate from "./options.js"
import * as storePeek from "./storePeek.js"
import * as tokenCache from "./tokenCache.js"
import { AnswerGrace, rotatedRefreshToken } from "./tokenEndpoint.js"
import * as tokenMetrics from "./tokenMetrics.js"

type GetOptions = UserTokens.GetOptions
import { UserTokenStore } from "../UserTokenStore.js"

interface Key {
  readonly user: CurrentUser.User
  readonly storeKey: string
  readonly params: TokenRequestOptions
  readonly parametersKey: string
  readonly id: string
  /** The tokens the last `get` found in an in-process store, with what was derived from them (see `hit`). */
  last: Last | undefined
}

interface Last {
  readonly token: UserToken
  /** `AccessToken.isFresh` is true before this instant. */
  readonly freshUntil: number
  readonly hit: Effect.Effect<AccessToken>
}

/** @internal */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const endpoint = yield* TokenEndpoint
    const metered = yield* TokenMetrics.Enabled
    const store = metered ? tokenMetrics.userTokenStore(yield* UserTokenStore) : yield* UserTokenStore
    const lock = yield* renewalLock("UserTokens", store, yield* TokenLock)
    const client = yield* TokenClient.decode(options.client)
    const metrics = metered ? tokenMetrics.client("refresh_token", client.clientId) : tokenMetrics.noClientMetrics
    const dpopAlgorithm = DPoP.algorithmOf(client.dpop)
    const renewBefore = yield* validate.duration("UserTokens", "renewBefore", options.renewBefore, "60 seconds")
    const backoff = yield* validate.backoff("UserTokens", options.backoff)
    const refreshAnswerTimeout = yield* validate.duration(
      "UserTokens",
      "refreshAnswerTimeout",
      options.refreshAnswerTimeout,
      "60 seconds"
    )
    yield* validate.discovery("UserTokens", options.discovery)
    const keepIdToken = yield* validate.flag("UserTokens", "keepIdToken", options.keepIdToken, false)
    /** The ID token to store with a user's tokens: the newest one if ID tokens are kept (`keepIdToken`), else none. */
    const idTokenToStore = (newest: Redacted.Redacted<string> | undefined, previous?: UserToken) => {
      const idToken = keepIdToken ? newest ?? previous?.idToken : undefined
      return idToken === undefined ? {} : { idToken }
    }
    yield* discover(endpoint, options.discovery, [client])

    const paramsFor = (get: GetOptions | undefined): TokenRequestOptions => {
      const resource = get?.resource ?? options.resource
      return {
        ...(resource === undefined ? {} : { resource }),
        ...(get?.scope === undefined ? {} : { scope: get.scope }),
        ...(get?.parameters === undefined ? {} : { parameters: get.parameters })
      }
    }

    const makeKey = (user: CurrentUser.User, get: GetOptions | undefined): Key => {
      const storeKey = CurrentUser.storeKey(user)
      const params = paramsFor(get)
      const key = parametersKey(params)
      return { user, storeKey, params, parametersKey: key, id: userTokenKey(storeKey, params), last: undefined }
    }
    // the key of a plain `get()` per user object: a connection provides one User for its lifetime
    const defaultKeys = new WeakMap<CurrentUser.User, Key>()
    const keyFor = (user: CurrentUser.User, get: GetOptions | undefined): Key => {
      if (
        get !== undefined && (get.resource !== undefined || get.scope !== undefined || get.parameters !== undefined)
      ) return makeKey(user, get)
      let key = defaultKeys.get(user)
      if (key === undefined) {
        key = makeKey(user, undefined)
        defaultKeys.set(user, key)
      }
      return key
    }

    /**
     * The write after a refresh holds the only copy of a rotated refresh token (the provider has spent the old
     * one): a store failing for a moment (a restarting Redis, a dropped connection) is retried while the renewal
     * lock is held, rather than the token thrown away and the user's grant with it.
     */
    const storeRotated = (key: Key, token: UserToken, spent: Redacted.Redacted<string>) => {
      const write = store.store(key.storeKey, token, key.params).pipe(
        // a write refused because the lease was lost stays refused: another instance may have taken over
        Effect.retry({ schedule: rotatedWriteRetry, while: (error) => error.transient && !isLeaseLost(error) })
      )
      const rotated = token.refreshToken !== undefined && Redacted.value(token.refreshToken) !== Redacted.value(spent)
      if (lock === undefined || !rotated) return write
      // The lease was lost after the provider rotated the refresh token (a dropped session, a stall): unless another
      // instance stored since, the rotated token is the grant's only one. Under a new lease, store it if the store
      // still holds the spent one; if anything else is there, whoever stored it decides.
      return Effect.catchIf(write, isLeaseLost, (lost) =>
        Effect.logWarning(
          "The renewal lease was lost after the provider rotated the refresh token: storing it under a new lease"
        ).pipe(
          Effect.zipRight(
            lock.withLock(key.storeKey)(
              Effect.flatMap(store.get(key.storeKey), (stored) =>
                Option.exists(
                    stored,
                    (stored) =>
                      stored.refreshToken !== undefined && Redacted.value(stored.refreshToken) === Redacted.value(spent)
                  )
                  ? write
                  : Effect.fail(lost))
            ).pipe(
              // the fault that lost the lease (a dropped session, a restarting Redis) may still be passing: try
              // again, re-checking the store each time, until the write lands or someone else's tokens are found
              Effect.retry({ schedule: rotatedWriteRetry, while: (error) => error !== lost && error.transient })
            )
          ),
          Effect.tapBoth({
            onFailure: (error) =>
              Effect.logWarning(
                error === lost
                  ? "The rotated refresh token was not stored: another instance stored or cleared the user's tokens meanwhile"
                  : "The rotated refresh token could not be stored under a new lease",
                error.message
              ),
            onSuccess: () => Effect.logInfo("The rotated refresh token was stored under a new lease")
          }),
          Effect.annotateLogs("atm.client", client.clientId)
        ))
    }

    const refresh = (key: Key, current: Option.Option<UserToken>) =>
      Effect.gen(function*() {
        if (Option.isNone(current)) {
          return yield* new SignInRequired({ subject: key.user.subject, reason: "no-tokens" })
        }
        // what the refresh keeps of the stored tokens; the ID token only if ID tokens are kept
        const { idToken: _, ...kept } = current.value
        const { refreshToken } = kept
        if (refreshToken === undefined) {
          return yield* new SignInRequired({ subject: key.user.subject, reason: "no-refresh-token" })
        }
        // the session's proof key: made on its first DPoP refresh, then stored with its tokens for every instance
        const dpopKey = dpopAlgorithm === undefined
          ? undefined
          : current.value.dpopKey ?? (yield* DPoP.generateKey(dpopAlgorithm))
        // Once sent, the refresh token may be spent whether or not its answer comes in time: the answer is awaited
        // (holding the lock) up to `refreshAnswerTimeout`, while callers are released at the endpoint's timeout
        const grace = Option.some({ timeout: refreshAnswerTimeout, release: yield* tokenCache.ReleaseWaiters })
        const response = yield* endpoint.request(
          client,
          Grant.RefreshToken({ refreshToken, options: key.params, dpopKey })
        )
          .pipe(
            Effect.provideService(AnswerGrace, grace),
            metrics.request,
            Effect.catchTag(
              "TokenRequestRejected",
              (error): Effect.Effect<never, TokenEndpointError | TokenStoreError | SignInRequired> =>
                error.error === "invalid_grant"
                  ? Effect.sync(metrics.refreshTokenRejected).pipe(
                    Effect.zipRight(store.clear(key.storeKey)),
                    Effect.zipRight(new SignInRequired({ subject: key.user.subject, reason: "refresh-token-rejected" }))
                  )
                  : Effect.fail(error)
            ),
            // a 2xx answer that rotated the refresh token but is unusable otherwise: the old refresh token is
            // spent, so the new one is stored before the error is reported
            Effect.tapError((error) =>
              Option.match(rotatedRefreshToken(error), {
                onNone: () => Effect.void,
                onSome: (rotated) =>
                  storeRotated(
                    key,
                    new UserToken({
                      ...kept,
                      refreshToken: rotated,
                      ...idTokenToStore(undefined, current.value),
                      ...(dpopKey === undefined ? {} : { dpopKey })
                    }),
                    refreshToken
                  )
              })
            )
          )
        const token = new UserToken({
          ...kept,
          accessToken: withResource(response.accessToken, key.params.resource),
          // a provider that does not rotate sends no refresh token: keep the one we have
          refreshToken: response.refreshToken ?? refreshToken,
          ...idTokenToStore(response.idToken, current.value),
          ...(dpopKey === undefined ? {} : { dpopKey })
        })
        yield* storeRotated(key, token, refreshToken)
        return token
      }).pipe(
        metrics.renewal,
        Effect.withSpan("UserTokens.refresh", {
          attributes: { "atm.client": client.clientId, "atm.resource": key.params.resource ?? "" }
        })
      )

    const cache = yield* tokenCache.make<Key, UserToken, TokenEndpointError | TokenStoreError | SignInRequired>(
      {
        keyOf: (key) => key.id,
        // the user's resources share one refresh token: refresh them one at a time
        lockKeyOf: (key) => key.storeKey,
        read: (key) => store.get(key.storeKey, key.params),
        accessToken: (token) => token.accessToken,
        renew: refresh
      },
      { renewBefore, backoff, lock },
      metered
        ? tokenMetrics.cacheInstruments(() => metrics)
        : undefined
    )

    /**
     * A hit without reading the store through the cache: when the store holds its tokens in this process and still
     * holds the very tokens the last `get` of this key found (a write, clear, expiry or a near cache's
     * invalidation replaces them), and their access token is still fresh, the ready-made success of that `get`.
     * Another process's writes reach this one through the store (or its near cache): they are seen as before.
     */
    const peek = storePeek.of(store)
    let closed = false
    yield* Effect.addFinalizer(() => Effect.sync(() => closed = true))
    const hit = (key: Key, now: number): Effect.Effect<AccessToken> | undefined => {
      const last = key.last
      return last !== undefined && now < last.freshUntil && !closed &&
          peek!(key.storeKey, key.parametersKey, now) === last.token
        ? last.hit
        : undefined
    }
    const found = (key: Key) => (token: UserToken) => {
      const accessToken = token.accessToken
      if (accessToken === undefined) {
        return Effect.fail(new SignInRequired({ subject: key.user.subject, reason: "no-tokens" }))
      }
      const success = Effect.succeed(accessToken)
      if (peek !== undefined) {
        key.last = {
          token,
          freshUntil: Math.min(renewAt(accessToken, renewBefore), accessToken.expiresAt),
          hit: success
        }
      }
      return success
    }

    const getFor = (user: CurrentUser.User, get?: GetOptions) => {
      const key = keyFor(user, get)
      if (get?.forceRenewal) return Effect.flatMap(cache.renew(key), found(key))
      return peek === undefined
        ? Effect.flatMap(cache.get(key), found(key))
        : Effect.clockWith((clock) =>
          hit(key, clock.unsafeCurrentTimeMillis()) ?? Effect.flatMap(cache.get(key), found(key))
        )
    }

    const nowOf = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => clockOf(fiber).unsafeCurrentTimeMillis()

    /**
     * `get()` as a connection calls it, for the one user it provides for its lifetime: the current user, the key
     * and a hit in one step of the fiber (no allocation).
     */
    const lookupDefault: Effect.Effect<AccessToken, UserTokenError> = Effect.withFiberRuntime((fiber) => {
      const user = currentUserIn(fiber)
      if (user === undefined) return CurrentUser.get as Effect.Effect<never, NoCurrentUser>
      const key = keyFor(user, undefined)
      return (peek === undefined ? undefined : hit(key, nowOf(fiber))) ?? Effect.flatMap(cache.get(key), found(key))
    })
    const getDefault = peek === undefined ? lookupDefault : new DefaultGet(lookupDefault, (fiber) => {
      const user = currentUserIn(fiber)
      const key = user === undefined ? undefined : defaultKeys.get(user)
      return key === undefined ? undefined : hit(key, nowOf(fiber))
    })

    /**
     * Revokes the stored refresh token (how a failure to revoke is handled is the caller's), then clears. Under the
     * user's renewal lock: a refresh in flight finishes first (and its rotated token is the one revoked), and a
     * refresh waiting for the lock finds the store empty afterwards.
     */
    const revokeAndClear = <E>(
      storeKey: string,
      onRevokeFailure: (error: TokenEndpointError) => Effect.Effect<void, E>,
      clearFirst = false
    ) =>
      Effect.gen(function*() {
        const stored = yield* store.get(storeKey)
        const refreshToken = Option.flatMapNullable(stored, (token) => token.refreshToken)
        if (clearFirst) yield* store.clear(storeKey)
        if (Option.isSome(refreshToken)) {
          yield* Effect.catchAll(endpoint.revoke(client, refreshToken.value, "refresh_token"), onRevokeFailure)
        }
        if (!clearFirst) yield* store.clear(storeKey)
      }).pipe(cache.withLock(storeKey))

    const tokens: UserTokens["Type"] = {
      get: (get) =>
        get === undefined || isDefault(get) ? getDefault : Effect.flatMap(CurrentUser.get, (user) => getFor(user, get)),
      renew: (rejected, get) =>
        Effect.flatMap(CurrentUser.get, (user) => {
          const key = keyFor(user, get)
          return Effect.flatMap(cache.renew(key, rejected), found(key))
        }),
      getFor,
      renewFor: (user, rejected, get) => {
        const key = keyFor(user, get)
        return Effect.flatMap(cache.renew(key, rejected), found(key))
      },
      revokeRefreshToken: Effect.flatMap(
        CurrentUser.get,
        (user) => revokeAndClear(CurrentUser.storeKey(user), Effect.fail)
      )
    }

    const events: OidcEvents["Type"] = {
      tokenValidated: (user, response, params, validated) =>
        Effect.gen(function*() {
          const decoded = yield* endpoint.decode(client, "authorization_code", response, validated?.sentAt)
          const storeParams = params ?? paramsFor(undefined)
          const dpopKey = validated?.dpopKey
          // a DPoP token of the code exchange is bound to the key the exchange proved
          const accessToken = dpopKey !== undefined && decoded.accessToken.tokenType === "DPoP"
            ? new AccessToken({ ...decoded.accessToken, dpopKey })
            : decoded.accessToken
          yield* store.store(
            CurrentUser.storeKey(user),
            new UserToken({
              clientId: client.clientId,
              accessToken: withResource(accessToken, storeParams.resource),
              ...(decoded.refreshToken === undefined ? {} : { refreshToken: decoded.refreshToken }),
              ...idTokenToStore(decoded.idToken),
              ...(dpopKey === undefined ? {} : { dpopKey })
            }),
            storeParams
          )
        }).pipe(Effect.withSpan("OidcEvents.tokenValidated")),
      // cleared before the provider is asked to revoke: with a near cache, the other instances stop using the
      // tokens within the bus's latency rather than after the provider's answer (a failure to revoke is logged)
      signingOut: (user) =>
        revokeAndClear(
          CurrentUser.storeKey(user),
          (error) => Effect.logWarning("Could not revoke the refresh token at sign-out; it is cleared", error.message),
          true
        ).pipe(Effect.withSpan("OidcEvents.signingOut"))
    }

    return { tokens, events }
  })

/** 50 ms doubling to 1 s between attempts, for up to 10 s: a Redis restart or a failover, not an outage */
const rotatedWriteRetry = Schedule.exponential("50 millis").pipe(
  Schedule.union(Schedule.spaced("1 second")),
  Schedule.upTo("10 seconds")
)

const noUser = (): undefined => undefined

/** The `CurrentUser` in `fiber`'s context, if any, read without a step of its own. */
const currentUserIn = (fiber: Fiber.RuntimeFiber<unknown, unknown>): CurrentUser.User | undefined =>
  Context.getOrElse(fiber.currentContext, CurrentUser.CurrentUser, noUser)

/**
 * The plain `get()` over an in-process store: run by the runtime it is `lookup`; under `yield*`, the current user's
 * hit is taken inline (see `InlineHit`), as a memoized client-credentials get does.
 */
class DefaultGet extends InlineHit<AccessToken, UserTokenError> {
  constructor(
    readonly lookup: Effect.Effect<AccessToken, UserTokenError>,
    readonly hitIn: (fiber: Fiber.RuntimeFiber<unknown, unknown>) => Effect.Effect<AccessToken> | undefined
  ) {
    super()
  }
  commit(): Effect.Effect<AccessToken, UserTokenError> {
    return this.lookup
  }
}

/** Options that ask for the default key's token, as a plain `get()` does. */
const isDefault = (get: GetOptions): boolean =>
  get.resource === undefined && get.scope === undefined && get.parameters === undefined && !get.forceRenewal

const withResource = (token: AccessToken, resource: string | undefined): AccessToken =>
  resource === undefined || token.resource === resource ? token : new AccessToken({ ...token, resource })
