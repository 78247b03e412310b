/**
 * DPoP-bound user tokens of a public client on two instances that share one store (Redis, PostgreSQL): the
 * session's proof key is stored, encrypted, with its refresh token, so that the instance that did not sign the user
 * in refreshes (the provider checks the refresh token's binding) and calls the API with proofs of that key.
 */
import {
  AccessTokenHttpClient,
  CurrentUser,
  DPoP,
  OidcEvents,
  TokenEndpoint,
  type TokenLock,
  UserTokens,
  UserTokenStore
} from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import { RedisStore } from "@effect-atm/store-redis"
import { SqlStore, SqlTokenLock } from "@effect-atm/store-sql"
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as oidc from "openid-client"
import { claims, identity } from "../support/environment.js"
import {
  deleteRedisKeysAfter,
  dropPgTablesAfter,
  encryption,
  keys,
  pgQuery,
  pgUrl,
  rawRedis,
  redisKeys,
  redisUrl,
  runId
} from "../support/stores.js"

const { publicDpop } = IdentityProvider.Clients
const resource = IdentityProvider.Resources.demoApi

class Api extends Context.Tag("Api")<Api, AccessTokenHttpClient.CurrentUserHttpClient>() {}

type Shared = Layer.Layer<UserTokenStore.UserTokenStore | TokenLock.TokenLock>

/** One instance of the application: its own token endpoint, cache and named client, over the shared store. */
const instance = (shared: Shared) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const api = yield* DemoApi.DemoApi
    const tokens = UserTokens.layer({
      client: { issuer: provider.issuer, clientId: publicDpop.clientId, authentication: "none", dpop: true },
      resource
    }).pipe(Layer.provideMerge(TokenEndpoint.layer()), Layer.provideMerge(shared), Layer.orDie)
    return yield* Layer.build(
      AccessTokenHttpClient.layerCurrentUser(Api, { baseUrl: api.url }).pipe(Layer.provideMerge(tokens))
    )
  })

/** The code flow of the public client; the code is exchanged by `endpoint` with a proof of `dpopKey`. */
const signIn = (account: string, dpopKey: Redacted.Redacted<string>) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const endpoint = yield* TokenEndpoint.TokenEndpoint
    const events = yield* OidcEvents.OidcEvents
    const config = yield* Effect.promise(() =>
      oidc.discovery(new URL(provider.issuer), publicDpop.clientId, undefined, oidc.None(), {
        execute: [oidc.allowInsecureRequests]
      })
    )
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const nonce = oidc.randomNonce()
    const url = oidc.buildAuthorizationUrl(
      config,
      new URLSearchParams({
        redirect_uri: "http://127.0.0.1:1/callback",
        scope: "openid offline_access api.read",
        code_challenge: yield* Effect.promise(() => oidc.calculatePKCECodeChallenge(verifier)),
        code_challenge_method: "S256",
        prompt: "consent",
        resource,
        state,
        nonce
      })
    )
    const callbackUrl = yield* provider.authorize(url, account)
    const client = {
      issuer: provider.issuer,
      clientId: publicDpop.clientId,
      authentication: "none",
      dpop: true
    } as const
    const response = yield* endpoint.request(
      { ...client, allowInsecureRequests: false },
      TokenEndpoint.Grant.AuthorizationCode({
        callbackUrl,
        codeVerifier: Redacted.make(verifier),
        expectedState: state,
        expectedNonce: Redacted.make(nonce),
        options: { resource },
        dpopKey
      })
    )
    const user = new CurrentUser.User({ subject: account, sessionId: runId() })
    yield* events.tokenValidated(
      user,
      {
        access_token: Redacted.value(response.accessToken.accessToken),
        token_type: response.accessToken.tokenType,
        expires_in: Math.floor((response.accessToken.expiresAt - Date.now()) / 1000),
        refresh_token: Redacted.value(response.refreshToken!),
        id_token: Redacted.value(response.idToken!)
      },
      { resource },
      { dpopKey }
    )
    return { user, response }
  })

const getData = Effect.flatMap(Api, (api) => Effect.flatMap(api.get("/data"), (response) => Effect.succeed(response)))

const backends: ReadonlyArray<
  readonly [string, (prefix: string) => Shared, (prefix: string) => Effect.Effect<Array<string>, never, Scope.Scope>]
> = [
  [
    "Redis",
    (prefix) =>
      RedisStore.layer({ url: redisUrl, prefix }).pipe(
        Layer.provide(encryption({ key: { key: keys.a } })),
        Layer.orDie
      ),
    (prefix) =>
      Effect.flatMap(
        rawRedis(),
        (client) =>
          Effect.flatMap(redisKeys(client, prefix), (found) =>
            Effect.promise(async () => {
              const values: Array<string> = []
              for (const key of found) {
                const type = await client.type(key)
                if (type === "hash") values.push(...Object.values(await client.hgetall(key)))
                else if (type === "string") values.push((await client.get(key)) ?? "")
              }
              return values
            }))
      )
  ],
  [
    "PostgreSQL",
    (prefix) =>
      Layer.merge(
        SqlStore.layerPg({ url: Redacted.make(pgUrl), tablePrefix: prefix }),
        SqlTokenLock.layer().pipe(Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl) })))
      ).pipe(Layer.provide(encryption({ key: { key: keys.a } })), Layer.orDie),
    (prefix) =>
      pgQuery<Record<string, unknown>>(`SELECT * FROM ${prefix}user_tokens`).pipe(
        Effect.map((rows) => rows.flatMap((row) => Object.values(row).map(String)))
      )
  ]
]

layer(identity(), { excludeTestServices: true, timeout: "30 seconds" })("DPoP-bound user tokens", (it) => {
  for (const [name, sharedStore, storedValues] of backends) {
    describe(name, () => {
      it.scoped("a DPoP-bound refresh token refreshes on another instance that shares the store", () =>
        Effect.gen(function*() {
          const provider = yield* IdentityProvider.IdentityProvider
          const prefix = `t${runId()}_dpop_`
          yield* Layer.build(name === "Redis" ? deleteRedisKeysAfter(prefix) : dropPgTablesAfter(prefix))
          const a = yield* instance(sharedStore(prefix))
          const b = yield* instance(sharedStore(prefix))

          const key = yield* DPoP.generateKey()
          const { response, user } = yield* signIn("alice", key).pipe(Effect.provide(a))
          assert.strictEqual(response.accessToken.tokenType, "DPoP")
          const first = yield* getData.pipe(CurrentUser.provide(user), Effect.provide(a))
          assert.strictEqual(first.status, 200, "instance A calls with proofs of the session key")

          yield* provider.resetCounters
          const refreshed = yield* Effect.flatMap(
            UserTokens.UserTokens,
            (tokens) => tokens.getFor(user, { forceRenewal: true })
          ).pipe(Effect.provide(b))
          assert.strictEqual(
            yield* provider.tokenRequests({ grantType: "refresh_token", clientId: publicDpop.clientId }),
            1,
            "instance B refreshed, with the key it read from the store (the provider checks the binding)"
          )
          assert.strictEqual(refreshed.tokenType, "DPoP")
          assert.strictEqual(
            (claims(Redacted.value(refreshed.accessToken)).cnf as { jkt: string }).jkt,
            DPoP.thumbprint(key)
          )
          const second = yield* getData.pipe(CurrentUser.provide(user), Effect.provide(b))
          assert.strictEqual(second.status, 200, "instance B calls with proofs of the session key")
          const third = yield* getData.pipe(CurrentUser.provide(user), Effect.provide(a))
          assert.strictEqual(third.status, 200, "instance A picks up B's token and key from the store")

          // the key is stored encrypted, like the refresh token
          const stored = Option.getOrThrow(
            yield* Effect.flatMap(
              UserTokenStore.UserTokenStore,
              (store) => store.get(CurrentUser.storeKey(user), { resource })
            )
              .pipe(Effect.provide(a))
          )
          assert.strictEqual(Redacted.value(stored.dpopKey!), Redacted.value(key))
          const { d } = JSON.parse(Redacted.value(key)) as { d: string }
          const raw = yield* storedValues(prefix)
          assert.isAbove(raw.length, 0)
          assert.isFalse(raw.some((value) => value.includes(d)), "no stored value shows the private key")
          assert.isFalse(
            raw.some((value) => value.includes(Redacted.value(stored.refreshToken!))),
            "nor the refresh token"
          )

          // the binding is real: the same refresh token with another key, or without a proof, is refused
          const endpoint = yield* Effect.provide(TokenEndpoint.TokenEndpoint, a)
          const client = { issuer: provider.issuer, clientId: publicDpop.clientId, authentication: "none" as const }
          const otherKey = yield* endpoint.request(
            { ...client, allowInsecureRequests: false },
            TokenEndpoint.Grant.RefreshToken({ refreshToken: stored.refreshToken!, dpopKey: yield* DPoP.generateKey() })
          ).pipe(Effect.flip)
          assert.strictEqual(otherKey._tag, "TokenRequestRejected", "a proof of another key does not refresh")
          assert.strictEqual(otherKey._tag === "TokenRequestRejected" ? otherKey.error : "", "invalid_grant")
        }))
    })
  }
})
