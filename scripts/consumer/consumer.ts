// A TypeScript consumer of the published packages, type-checked by scripts/consumer-test.sh under
// `moduleResolution: nodenext` and `bundler` (tsconfig.nodenext.json, tsconfig.bundler.json). Root entries and deep
// module entries of every package; internals must be refused. It is never run.
import type { UserTokenStore } from "@effect-atm/core"
import { AccessTokenHttpClient, AccessTokenManagement, AccessTokenStore, TokenLock } from "@effect-atm/core"
import * as AccessToken from "@effect-atm/core/AccessToken"
import type { TokenStoreError } from "@effect-atm/core/TokenError"
// @ts-expect-error internals are not exported ("./internal/*": null)
import * as _TokenCacheInternal from "@effect-atm/core/internal/tokenCache"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as DemoApiModule from "@effect-atm/dev-identity/DemoApi"
import type { OidcLogin } from "@effect-atm/oidc-login"
import type * as Session from "@effect-atm/oidc-login/Session"
import { RedisStore } from "@effect-atm/store-redis"
import * as RedisTokenLock from "@effect-atm/store-redis/RedisTokenLock"
import { SqlStore, SqlTokenLock } from "@effect-atm/store-sql"
import * as SqlStoreModule from "@effect-atm/store-sql/SqlStore"
import type * as Testing from "@effect-atm/testing"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"

class CatalogApi extends Context.Tag("consumer/CatalogApi")<
  CatalogApi,
  AccessTokenHttpClient.ClientCredentialsHttpClient
>() {}

export const CatalogApiLive: Layer.Layer<CatalogApi, unknown, never> = AccessTokenHttpClient.layerClientCredentials(
  CatalogApi,
  { client: "catalog", baseUrl: "https://catalog.example.com" }
).pipe(
  Layer.provide(AccessTokenManagement.layerClientCredentials({
    clients: {
      catalog: { issuer: "https://login.example.com", clientId: "worker", clientSecret: Redacted.make("secret") }
    }
  })),
  Layer.provide([AccessTokenStore.layerMemory(), TokenLock.layerMemory]),
  Layer.provide(NodeHttpClient.layerUndici)
)

export const listItems = Effect.flatMap(CatalogApi, (api) => api.get("/items"))

export const StoreLive = SqlStore.layerPg({ url: Redacted.make("postgres://localhost/tokens") })
export const storeProvides: UserTokenStore.UserTokenStore extends Layer.Layer.Success<typeof StoreLive> ? true : never =
  true
export const storeFails: Layer.Layer.Error<typeof StoreLive> extends TokenStoreError ? true : never = true
export const sameLayer: typeof SqlStore.layerPg = SqlStoreModule.layerPg

export const isFresh: (token: AccessToken.AccessToken, now: number) => boolean = (token, now) =>
  AccessToken.isFresh(token, now, Duration.seconds(30))

export const DevIdentityLive = DemoApi.layer().pipe(Layer.provideMerge(IdentityProvider.layer()))
export const demoApiTag: typeof DemoApi.DemoApi = DemoApiModule.DemoApi

export type LoginService = OidcLogin.OidcLogin
export type StoredSession = Session.Session
export const redis = { layer: RedisStore.layer, lock: RedisTokenLock.layer }
export const sqlLock = SqlTokenLock.layer
export type TestingModule = typeof Testing
