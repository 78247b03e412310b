import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import { parametersKey } from "../AccessToken.js"
import { ClusterEvents, TokensChanged } from "../ClusterEvents.js"
import type { TokenStoreError } from "../TokenError.js"
import * as UserTokenModule from "../UserToken.js"
import type { UserToken } from "../UserToken.js"
import type { NearCacheOptions, UserTokenStore } from "../UserTokenStore.js"
import { readThrough } from "./readThrough.js"
import * as storePeek from "./storePeek.js"

interface Cached {
  readonly found: Option.Option<UserToken>
  readonly expiresAt: number
}

/** @internal */
export const defaults = { capacity: 10_000, timeToLive: Duration.minutes(1) } as const

/** @internal */
export const make = (store: UserTokenStore["Type"], options: NearCacheOptions = {}) =>
  Effect.gen(function*() {
    const events = yield* ClusterEvents
    const capacity = options.capacity ?? defaults.capacity
    const timeToLive = Duration.toMillis(Duration.decode(options.timeToLive ?? defaults.timeToLive))
    /** Per user (Map order: least recently filled first), per parameters. */
    const users = new Map<string, Map<string, Cached>>()
    let size = 0
    /**
     * Bumped by every invalidation: a read that started before one does not fill the cache with what it read
     * (it may be the value the invalidation was about).
     */
    let epoch = 0

    const invalidate = (user: string) => {
      epoch++
      const entries = users.get(user)
      if (entries === undefined) return
      size -= entries.size
      users.delete(user)
    }

    const fill = (user: string, key: string, token: UserToken, now: number) => {
      let entries = users.get(user)
      if (entries === undefined) {
        users.set(user, entries = new Map())
      } else {
        // re-insert: the user becomes the most recently filled
        users.delete(user)
        users.set(user, entries)
      }
      if (!entries.has(key)) size++
      entries.set(key, { found: Option.some(token), expiresAt: now + timeToLive })
      while (size > capacity) {
        const [oldest, its] = users.entries().next().value!
        size -= its.size
        users.delete(oldest)
      }
    }

    // another instance's write or clear makes the user's entries stale; a lost subscription, every entry
    const deliveries = yield* events.subscribe
    yield* Queue.take(deliveries).pipe(
      Effect.flatMap(({ event, local }) =>
        Effect.sync(() => {
          if (event._tag === "Resubscribed") {
            epoch++
            users.clear()
            size = 0
          } else if (event._tag === "TokensChanged" && !local) {
            invalidate(event.user)
          }
        })
      ),
      Effect.forever,
      Effect.forkScoped
    )

    const announce = (user: string) =>
      events.publish(new TokensChanged({ user })).pipe(
        Effect.catchAll((error) =>
          Effect.logWarning(
            "Could not tell the other instances that a user's tokens changed; their near caches keep the old " +
              "tokens until they expire there",
            error.message
          )
        )
      )

    const service: UserTokenStore["Type"] = {
      distributed: store.distributed,
      // the hot path: one fiber-ref read and one clock read, no allocation on a hit
      get: (user, params) =>
        FiberRef.getWith(readThrough, (through) =>
          Effect.clockWith((clock): Effect.Effect<Option.Option<UserToken>, TokenStoreError> => {
            const now = clock.unsafeCurrentTimeMillis()
            const key = parametersKey(params)
            const cached = through ? undefined : users.get(user)?.get(key)
            if (cached !== undefined && cached.expiresAt > now) {
              return Effect.succeed(cached.found)
            }
            const started = epoch
            return Effect.tap(store.get(user, params), (found) =>
              Effect.sync(() => {
                // nothing is kept for a user the store does not know: their sign-in elsewhere must not wait
                if (Option.isSome(found) && epoch === started) {
                  fill(user, key, found.value, now)
                }
              }))
          })),
      store: (user, token, params) =>
        Effect.gen(function*() {
          yield* store.store(user, token, params)
          // the refresh token is shared by all of the user's parameters: every entry of the user is stale
          invalidate(user)
          if (token.accessToken !== undefined) {
            fill(
              user,
              parametersKey(params),
              UserTokenModule.withAccessToken(UserTokenModule.shared(token), token.accessToken),
              yield* Clock.currentTimeMillis
            )
          }
          yield* announce(user)
        }),
      clear: (user, params) =>
        Effect.gen(function*() {
          yield* store.clear(user, params)
          invalidate(user)
          yield* announce(user)
        })
    }
    return storePeek.register(service, (user, key, now) => {
      const entry = users.get(user)?.get(key)
      return entry === undefined || entry.expiresAt <= now || entry.found._tag === "None"
        ? undefined
        : entry.found.value
    })
  })
