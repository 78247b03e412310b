/**
 * The token store registration of the example: the in-memory `UserTokenStore`, wrapped to remember when each
 * user's tokens were written. The first write of a user is the sign-in (`OidcEvents.tokenValidated`); every
 * later one is a refresh (the manager stores the rotated refresh token). The page shows these counts.
 *
 * Any store works the same way: swap `UserTokenStore.layerMemory()` for the SQL or Redis layer.
 */
import * as CurrentUser from "@effect-atm/core/CurrentUser"
import * as UserTokenStore from "@effect-atm/core/UserTokenStore"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** What the page shows about a user's tokens (times in epoch milliseconds); never the tokens themselves. */
export interface Activity {
  readonly signedInAt: number
  readonly refreshes: number
  readonly lastRefreshedAt: number | undefined
  /** When the current access token expires. */
  readonly accessTokenExpiresAt: number | undefined
}

export class TokenActivity extends Context.Tag("example-realtime/TokenActivity")<TokenActivity, {
  readonly of: (user: CurrentUser.User) => Effect.Effect<Activity | undefined>
}>() {}

/** Wraps a store layer: provides the same `UserTokenStore`, observed, and `TokenActivity`. */
export const layerObserved = <E, R>(
  store: Layer.Layer<UserTokenStore.UserTokenStore, E, R>
): Layer.Layer<UserTokenStore.UserTokenStore | TokenActivity, E, R> =>
  Layer.effectContext(Effect.gen(function*() {
    const inner = yield* UserTokenStore.UserTokenStore
    const activity = new Map<string, Activity>()

    const observed = UserTokenStore.UserTokenStore.of({
      get: inner.get,
      store: (user, token, params) =>
        Effect.tap(inner.store(user, token, params), () =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            const previous = activity.get(user)
            const accessTokenExpiresAt = token.accessToken?.expiresAt
            activity.set(
              user,
              previous === undefined
                ? { signedInAt: now, refreshes: 0, lastRefreshedAt: undefined, accessTokenExpiresAt }
                : { ...previous, refreshes: previous.refreshes + 1, lastRefreshedAt: now, accessTokenExpiresAt }
            )
          })),
      clear: (user, params) =>
        Effect.tap(inner.clear(user, params), () =>
          Effect.sync(() => {
            if (params === undefined) activity.delete(user)
          }))
    })

    return Context.make(UserTokenStore.UserTokenStore, observed).pipe(
      Context.add(TokenActivity, {
        of: (user) => Effect.sync(() => activity.get(CurrentUser.storeKey(user)))
      })
    )
  })).pipe(Layer.provide(store))
