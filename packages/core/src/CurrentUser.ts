/**
 * Who the current fiber acts for. The host provides it per HTTP request, per websocket connection or per job; it
 * travels in the Effect context, so user tokens work where no HTTP request is at hand.
 *
 * @example
 * ```ts
 * import { CurrentUser, UserTokens } from "@effect-atm/core"
 * import { Effect } from "effect"
 *
 * const user = new CurrentUser.User({ subject: "alice", sessionId: "s-123" })
 * const program = Effect.flatMap(UserTokens.UserTokens, (tokens) => tokens.get()).pipe(CurrentUser.provide(user))
 * ```
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Schema from "effect/Schema"
import { keyPart } from "./AccessToken.js"
import { NoCurrentUser } from "./TokenError.js"

/**
 * A signed-in user: the subject (`sub`), and where the host has one, the session it signed in with.
 *
 * @since 0.1.0
 * @category models
 */
export class User extends Schema.Class<User>("@effect-atm/core/User")({
  subject: Schema.NonEmptyString,
  sessionId: Schema.optional(Schema.NonEmptyString),
  claims: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}) {}

/**
 * @since 0.1.0
 * @category tags
 */
export class CurrentUser extends Context.Tag("@effect-atm/core/CurrentUser")<CurrentUser, User>() {}

/**
 * The one place that decides what the token store keys a user's tokens on.
 *
 * A user has one set of tokens **per sign-in session**: `subject` and `sessionId` together. Signing in from a
 * second browser makes a second grant with its own refresh token, so signing out of one browser (which revokes
 * its refresh token) leaves the other signed in, and the two never race on one rotating refresh token. A user
 * without a session id (a job acting for a subject) is keyed by subject alone. Both are encoded with
 * `AccessToken.keyPart`, so that no two users share a key whatever characters their subject and session hold.
 *
 * @example
 * ```ts
 * import { CurrentUser } from "@effect-atm/core"
 *
 * CurrentUser.storeKey(new CurrentUser.User({ subject: "alice", sessionId: "s-1" })) // "alice;s-1"
 * CurrentUser.storeKey(new CurrentUser.User({ subject: "alice", sessionId: "s-2" })) // "alice;s-2": another grant
 * CurrentUser.storeKey(new CurrentUser.User({ subject: "auth0|42" })) // "auth0%007C42"
 * ```
 *
 * @since 0.1.0
 * @category keys
 */
export const storeKey = (user: User): string =>
  user.sessionId === undefined ? keyPart(user.subject) : `${keyPart(user.subject)};${keyPart(user.sessionId)}`

/**
 * The current user, or `NoCurrentUser` when the fiber acts for nobody.
 *
 * @since 0.1.0
 * @category accessors
 */
export const get: Effect.Effect<User, NoCurrentUser> = Effect.flatMap(
  Effect.serviceOption(CurrentUser),
  (user) => user._tag === "Some" ? Effect.succeed(user.value) : Effect.fail(new NoCurrentUser())
)

/**
 * Runs an effect on behalf of a user.
 *
 * @since 0.1.0
 * @category combinators
 */
export const provide: {
  (user: User): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, Exclude<R, CurrentUser>>
  <A, E, R>(self: Effect.Effect<A, E, R>, user: User): Effect.Effect<A, E, Exclude<R, CurrentUser>>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, user: User): Effect.Effect<A, E, Exclude<R, CurrentUser>> =>
    Effect.provideService(self, CurrentUser, user)
)
