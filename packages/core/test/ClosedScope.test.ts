import {
  AccessToken,
  AccessTokenHttpClient,
  ClientCredentialsTokens,
  CurrentUser,
  TokenCache,
  TokenError,
  UserTokens
} from "@effect-atm/core"
import { DemoApi } from "@effect-atm/dev-identity"
import { assert, describe, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { clientCredentials, identity, userTokens } from "../../../test/support/environment.js"
import { signIn } from "../../../test/support/login.js"

/** The error of an effect that must fail at once with TokenManagerClosed (a hang fails the test by its timeout). */
const closedFailure = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(effect), (error) => {
    assert.isTrue(TokenError.isTokenManagerClosed(error), `TokenManagerClosed, got ${String(error)}`)
    return error as TokenError.TokenManagerClosed
  })

const token = (secret: string, expiresAt = 3_600_000) =>
  new AccessToken.AccessToken({ accessToken: Redacted.make(secret), tokenType: "Bearer", issuedAt: 0, expiresAt })

/** A cache over a Map, built in a scope of its own that the test closes. */
const cacheInScope = (gate?: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const values = new Map<string, AccessToken.AccessToken>()
    let renewals = 0
    const cache = yield* TokenCache.make<string, AccessToken.AccessToken, never>({
      keyOf: (key) => key,
      read: (key) => Effect.sync(() => Option.fromNullable(values.get(key))),
      accessToken: (value) => value,
      renew: (key) =>
        Effect.gen(function*() {
          renewals++
          if (gate !== undefined) yield* Deferred.await(gate)
          const renewed = token(`${key}#${renewals}`)
          values.set(key, renewed)
          return renewed
        })
    }, { renewBefore: "60 seconds", memoize: true }).pipe(Scope.extend(scope))
    return { scope, cache, renewals: () => renewals }
  })

describe("a token cache used after its scope closed", () => {
  it.effect("fails at once with TokenManagerClosed instead of waiting forever", () =>
    Effect.gen(function*() {
      const { cache, renewals, scope } = yield* cacheInScope()
      yield* cache.get("warm") // memoized: a hit after the close must not hide the mistake either
      yield* Scope.close(scope, Exit.void)
      const error = yield* closedFailure(cache.get("cold"))
      yield* closedFailure(cache.get("warm"))
      yield* closedFailure(cache.renew("warm"))
      assert.strictEqual(renewals(), 1, "nothing renewed after the close")
      assert.match(error.message, /after the scope of its layer had closed/)
      assert.match(error.message, /Provide the layer once, for the lifetime of the application/)
    }))

  it.effect("callers waiting for a renewal when the scope closes fail with TokenManagerClosed", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>() // never opened: the renewal is in flight when the scope closes
      const { cache, renewals, scope } = yield* cacheInScope(gate)
      const waiters = yield* Effect.fork(
        Effect.all(Array.from({ length: 5 }, () => Effect.flip(cache.get("a"))), { concurrency: "unbounded" })
      )
      while (renewals() === 0) yield* Effect.yieldNow()
      assert.strictEqual(yield* cache.inFlight, 1)
      yield* Scope.close(scope, Exit.void)
      const errors = yield* Fiber.join(waiters)
      assert.strictEqual(errors.length, 5)
      for (const error of errors) assert.isTrue(TokenError.isTokenManagerClosed(error))
      assert.strictEqual(yield* cache.inFlight, 0)
    }))
})

class DemoApiClient extends Context.Tag("test/ClosedScopeDemoApiClient")<
  DemoApiClient,
  AccessTokenHttpClient.ClientCredentialsHttpClient
>() {}

layer(identity({ accessTokenTtl: 300 }))("managers whose layer was provided around a single call", (it) => {
  it.effect("ClientCredentialsTokens and its named client fail with TokenManagerClosed", () =>
    Effect.gen(function*() {
      const api = yield* DemoApi.DemoApi
      const named = AccessTokenHttpClient.layerClientCredentials(DemoApiClient, { client: "basic", baseUrl: api.url })
      // the mistake: the layer lives only as long as this one effect, the services are kept for later
      const { client, tokens } = yield* Effect.gen(function*() {
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        yield* tokens.get("basic") // worked while the layer was alive
        return { tokens, client: yield* DemoApiClient }
      }).pipe(Effect.provide(Layer.provideMerge(named, clientCredentials())))
      yield* closedFailure(tokens.get("basic"))
      yield* closedFailure(tokens.get("post"))
      yield* closedFailure(client.get("/data").pipe(Effect.scoped))
    }))

  it.effect("UserTokens fails with TokenManagerClosed", () =>
    Effect.gen(function*() {
      const { tokens, user } = yield* Effect.gen(function*() {
        const { user } = yield* signIn("closed-scope")
        const tokens = yield* UserTokens.UserTokens
        yield* tokens.get().pipe(CurrentUser.provide(user)) // worked while the layer was alive
        return { tokens, user }
      }).pipe(Effect.provide(userTokens()))
      yield* closedFailure(tokens.get().pipe(CurrentUser.provide(user)))
      yield* closedFailure(tokens.getFor(user, { forceRenewal: true }))
    }))
})
