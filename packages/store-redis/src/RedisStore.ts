/**
 * Token stores on Redis, shared by every instance of an application:
 *
 * - a `UserTokenStore`: one hash per user (their refresh and ID tokens, and an access token per resource and
 *   scope), written in one transaction and expiring `timeToLive` after its last write, with its refresh token;
 * - an `AccessTokenStore` for client-credentials tokens: instances share one token per client and parameters,
 *   each entry expiring with its token;
 * - and, with `layer`, the `TokenLock` of `RedisTokenLock`, so that one instance at a time renews a key.
 *
 * With a `TokenEncryption` in the context, every token is encrypted at rest (AES-256-GCM).
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, TokenEncryption } from "@effect-atm/core"
 * import { RedisStore } from "@effect-atm/store-redis"
 * import { Layer } from "effect"
 *
 * const StoreLive = RedisStore.layer({ url: "redis://127.0.0.1:6379", prefix: "my-app:" }).pipe(
 *   Layer.provide(TokenEncryption.layerConfig()) // TOKEN_ENCRYPTION_KEY=<32 bytes base64>
 * )
 * const TokensLive = AccessTokenManagement.layerServer({ client: { issuer: "…", clientId: "web" } }).pipe(
 *   Layer.provide(StoreLive)
 * )
 * ```
 *
 * @since 0.1.0
 */
import { AccessTokenStore } from "@effect-atm/core/AccessTokenStore"
import * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import type { TokenStoreError } from "@effect-atm/core/TokenError"
import type { TokenLock } from "@effect-atm/core/TokenLock"
import { UserTokenStore } from "@effect-atm/core/UserTokenStore"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as internal from "./internal/redis.js"
import * as RedisConnection from "./RedisConnection.js"
import * as RedisTokenLock from "./RedisTokenLock.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  /**
   * Prefix of every key (`<prefix>user:<user>`, `<prefix>cc:<key>`, `<prefix>lock:<key>`): give each application
   * (or environment) sharing a Redis its own. Default: `effect-atm:`.
   */
  readonly prefix?: string | undefined
  /**
   * How long a user's tokens are kept after their last write: set it to the provider's refresh token lifetime.
   * Default: 14 days.
   */
  readonly timeToLive?: Duration.DurationInput | undefined
}

/**
 * Everything `layer` takes: the connection, the stores and the lock.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends RedisConnection.ConnectionOptions, StoreOptions, RedisTokenLock.LockOptions {}

const encryption = TokenEncryption.TokenEncryption

/**
 * The user token store over the connection and the `TokenEncryption` in the context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeUserTokenStore = (
  options: StoreOptions = {}
): Effect.Effect<
  UserTokenStore["Type"],
  TokenStoreError,
  RedisConnection.RedisConnection | TokenEncryption.TokenEncryption
> =>
  Effect.zipRight(
    internal.checkStoreOptions(options),
    Effect.zipWith(
      RedisConnection.RedisConnection,
      encryption,
      (client, encryption) => internal.makeUserTokenStore(client, options, encryption)
    )
  )

/**
 * The shared client-credentials token store over the connection in the context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAccessTokenStore = (
  options: StoreOptions = {}
): Effect.Effect<AccessTokenStore["Type"], never, RedisConnection.RedisConnection | TokenEncryption.TokenEncryption> =>
  Effect.zipWith(
    RedisConnection.RedisConnection,
    encryption,
    (client, encryption) => internal.makeAccessTokenStore(client, options, encryption)
  )

/**
 * @since 0.1.0
 * @category layers
 */
export const layerUserTokenStore = (
  options?: StoreOptions
): Layer.Layer<UserTokenStore, TokenStoreError, RedisConnection.RedisConnection | TokenEncryption.TokenEncryption> =>
  Layer.effect(UserTokenStore, makeUserTokenStore(options))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerAccessTokenStore = (
  options?: StoreOptions
): Layer.Layer<AccessTokenStore, never, RedisConnection.RedisConnection | TokenEncryption.TokenEncryption> =>
  Layer.effect(AccessTokenStore, makeAccessTokenStore(options))

/**
 * The user token store, the client-credentials token store and the renewal lock over a connection provided to
 * it.
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, TokenEncryption } from "@effect-atm/core"
 * import { RedisConnection, RedisStore } from "@effect-atm/store-redis"
 * import { Layer, Redacted } from "effect"
 *
 * // one connection for the tokens and for the application's own use of Redis (`RedisConnection`)
 * const TokensLive = AccessTokenManagement.layerServer({
 *   client: { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("…") },
 *   resource: "https://api.example.com"
 * }).pipe(
 *   Layer.provide(RedisStore.layerWithoutConnection({ prefix: "shop:", timeToLive: "30 days" })),
 *   Layer.provide(TokenEncryption.layerConfig()),
 *   Layer.provideMerge(RedisConnection.layerConfig()) // REDIS_URL=redis://…
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithoutConnection = (
  options: StoreOptions & RedisTokenLock.LockOptions = {}
): Layer.Layer<
  UserTokenStore | AccessTokenStore | TokenLock,
  TokenStoreError,
  RedisConnection.RedisConnection | TokenEncryption.TokenEncryption
> => Layer.mergeAll(layerUserTokenStore(options), layerAccessTokenStore(options), RedisTokenLock.layer(options))

/**
 * Everything on one connection of its own (connected when the layer is built, quit when it is released): the
 * user token store, the shared client-credentials token store and the cluster-wide renewal lock.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<UserTokenStore | AccessTokenStore | TokenLock, TokenStoreError, TokenEncryption.TokenEncryption> =>
  layerWithoutConnection(options).pipe(Layer.provide(RedisConnection.layer(options)))

/**
 * Reads the connection (`URL`, `COMMAND_TIMEOUT`, `CONNECT_TIMEOUT`) and `PREFIX`, `TIME_TO_LIVE`, `LEASE_TIME`,
 * nested under `REDIS` by `layerConfig` (environment: `REDIS_URL`, `REDIS_PREFIX`, ...).
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  connection: RedisConnection.config,
  prefix: Config.string("PREFIX").pipe(Config.withDefault(internal.defaults.prefix)),
  timeToLive: Config.duration("TIME_TO_LIVE").pipe(Config.withDefault(internal.defaults.timeToLive)),
  leaseTime: Config.duration("LEASE_TIME").pipe(Config.withDefault(internal.defaults.leaseTime))
}).pipe(Config.map(({ connection, ...rest }): Options => ({ ...connection, ...rest })))

/**
 * `layer` from Effect `Config` (by default `config` nested under `REDIS`).
 *
 * @example
 * ```ts
 * import { TokenEncryption } from "@effect-atm/core"
 * import { RedisStore } from "@effect-atm/store-redis"
 * import { Layer } from "effect"
 *
 * // REDIS_URL=rediss://:password@cache.internal:6380 REDIS_PREFIX=shop: REDIS_TIME_TO_LIVE="30 days"
 * // TOKEN_ENCRYPTION_KEY=$(openssl rand -base64 32)
 * const StoresLive = RedisStore.layerConfig().pipe(Layer.provide(TokenEncryption.layerConfig()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: Config.Config<Options>
): Layer.Layer<
  UserTokenStore | AccessTokenStore | TokenLock,
  TokenStoreError | ConfigError.ConfigError,
  TokenEncryption.TokenEncryption
> => Layer.unwrapEffect(Effect.map(options ?? Config.nested(config, "REDIS"), layer))
