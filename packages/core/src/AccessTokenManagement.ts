/**
 * One layer per use case, wiring the token endpoint, the managers and their stores.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as AccessTokenStore from "./AccessTokenStore.js"
import * as ClientCredentialsTokens from "./ClientCredentialsTokens.js"
import * as validate from "./internal/options.js"
import type { OidcEvents } from "./OidcEvents.js"
import * as TokenClient from "./TokenClient.js"
import * as TokenEndpoint from "./TokenEndpoint.js"
import type { DiscoveryFailed, InvalidClientConfiguration } from "./TokenError.js"
import * as TokenLock from "./TokenLock.js"
import * as UserTokens from "./UserTokens.js"
import * as UserTokenStore from "./UserTokenStore.js"

/**
 * The name under which `layerServer` registers the application's own client-credentials client, derived from the
 * OpenID Connect client configuration (for calls the app makes on its own behalf).
 *
 * @since 0.1.0
 * @category constants
 */
export const appClient = "openid-connect"

/**
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions extends UserTokens.Options {
  /** Further client-credentials clients, by name. */
  readonly clients?: ClientCredentialsTokens.Options["clients"] | undefined
  /** The scope of the app's own client-credentials tokens. */
  readonly appScope?: string | undefined
  readonly endpoint?: TokenEndpoint.Options | undefined
}

/**
 * When provider metadata is discovered: at layer build (`"eager"`, the default) or at the first request. The
 * managers take it as their `discovery` option.
 *
 * @since 0.2.0
 * @category models
 */
export type Discovery = TokenEndpoint.Discovery

/**
 * Options of `layerClientCredentials`: the clients, the endpoint and when to discover.
 *
 * @since 0.2.0
 * @category models
 */
export interface ClientCredentialsOptions extends ClientCredentialsTokens.Options {
  readonly endpoint?: TokenEndpoint.Options | undefined
}

/** The managers over the endpoint (they discover their clients' metadata as they are built, unless told not to). */
const withEndpoint = <A, E, R>(
  managers: Layer.Layer<A, E, R>,
  options: { readonly endpoint?: TokenEndpoint.Options | undefined }
): Layer.Layer<
  A | TokenEndpoint.TokenEndpoint,
  E | InvalidClientConfiguration,
  Exclude<R, TokenEndpoint.TokenEndpoint> | HttpClient.HttpClient
> =>
  Layer.provideMerge(
    managers,
    // the endpoint's durations are checked first: a typed error naming the field, not a defect at the first request
    Layer.unwrapEffect(
      Effect.as(validate.endpoint("endpoint", options.endpoint), TokenEndpoint.layer(options.endpoint))
    )
  )

/**
 * What `layerServer` provides: both managers, the OIDC events and the token endpoint.
 *
 * @since 0.2.0
 * @category models
 */
export type ServerServices =
  | UserTokens.UserTokens
  | OidcEvents
  | ClientCredentialsTokens.ClientCredentialsTokens
  | TokenEndpoint.TokenEndpoint

/**
 * What the managers of `layerServer` and `layerClientCredentials` take from the context: where tokens live and
 * how renewals exclude each other.
 *
 * @since 0.2.0
 * @category models
 */
export type Stores = UserTokenStore.UserTokenStore | AccessTokenStore.AccessTokenStore | TokenLock.TokenLock

/**
 * Everything a server that calls APIs for its signed-in users needs: `UserTokens`, `OidcEvents`,
 * `ClientCredentialsTokens` (with the app's own client under `appClient`) and the `TokenEndpoint`. The stores and
 * the lock come from the context — memory ones for one process (`layerServerMemory`), shared ones and a
 * distributed lock for a cluster. The counterpart of .NET's
 * `AddOpenIdConnectAccessTokenManagement().AddBlazorServerAccessTokenManagement<TStore>()`.
 *
 * The OpenID Connect client is decoded once: a mistake in it fails the layer with one
 * `InvalidClientConfiguration` naming `client` and the field.
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, AccessTokenStore, TokenLock, UserTokenStore } from "@effect-atm/core"
 * import { Layer, Redacted } from "effect"
 *
 * const TokensLive = AccessTokenManagement.layerServer({
 *   client: { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("…") },
 *   resource: "https://api.example.com"
 * }).pipe(
 *   // one process; for a cluster: RedisStore / SqlStore layers and RedisTokenLock / SqlTokenLock
 *   Layer.provide([UserTokenStore.layerMemory(), AccessTokenStore.layerMemory(), TokenLock.layerMemory])
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerServer = (
  options: ServerOptions
): Layer.Layer<
  ServerServices,
  InvalidClientConfiguration | DiscoveryFailed,
  Stores | HttpClient.HttpClient
> =>
  Layer.unwrapEffect(Effect.map(TokenClient.decode(options.client), (client) => {
    const app = new ClientCredentialsTokens.ClientCredentialsClient({
      ...client,
      ...(options.appScope === undefined ? {} : { scope: options.appScope }),
      ...(options.resource === undefined ? {} : { resource: options.resource })
    })
    const managers = Layer.merge(
      UserTokens.layer({ ...options, client }),
      ClientCredentialsTokens.layer({
        renewBefore: options.renewBefore,
        backoff: options.backoff,
        discovery: options.discovery,
        clients: { ...options.clients, [appClient]: app }
      })
    )
    return withEndpoint(managers, options)
  }))

/**
 * `layerServer` for one process: in-memory stores and the process-local lock.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerServerMemory = (
  options: ServerOptions
): Layer.Layer<
  ServerServices,
  InvalidClientConfiguration | DiscoveryFailed,
  HttpClient.HttpClient
> => layerServer(options).pipe(Layer.provide(layerStoresMemory))

/**
 * Everything a worker that calls APIs with its own client-credentials tokens needs, over the `AccessTokenStore`
 * and `TokenLock` in the context.
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, TokenEncryption } from "@effect-atm/core"
 * import { RedisStore } from "@effect-atm/store-redis"
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Layer, Redacted } from "effect"
 *
 * // twenty replicas of a worker share one token per client, and one of them at a time renews it
 * const TokensLive = AccessTokenManagement.layerClientCredentials({
 *   clients: {
 *     catalog: { issuer: "https://login.example.com", clientId: "worker", clientSecret: Redacted.make("…") }
 *   }
 * }).pipe(
 *   Layer.provide(RedisStore.layerConfig().pipe(Layer.provide(TokenEncryption.layerConfig()))),
 *   Layer.provide(NodeHttpClient.layerUndici)
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClientCredentials = (
  options: ClientCredentialsOptions
): Layer.Layer<
  ClientCredentialsTokens.ClientCredentialsTokens | TokenEndpoint.TokenEndpoint,
  InvalidClientConfiguration | DiscoveryFailed,
  AccessTokenStore.AccessTokenStore | TokenLock.TokenLock | HttpClient.HttpClient
> => withEndpoint(ClientCredentialsTokens.layer(options), options)

/**
 * `layerClientCredentials` for one process: an in-memory token store and the process-local lock.
 *
 * @example
 * ```ts
 * import { AccessTokenManagement } from "@effect-atm/core"
 * import { Redacted } from "effect"
 *
 * const TokensLive = AccessTokenManagement.layerClientCredentialsMemory({
 *   clients: {
 *     catalog: { issuer: "https://login.example.com", clientId: "worker", clientSecret: Redacted.make("…") }
 *   }
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerClientCredentialsMemory = (
  options: ClientCredentialsOptions
): Layer.Layer<
  ClientCredentialsTokens.ClientCredentialsTokens | TokenEndpoint.TokenEndpoint,
  InvalidClientConfiguration | DiscoveryFailed,
  HttpClient.HttpClient
> => withEndpoint(ClientCredentialsTokens.layerMemory(options), options)

/**
 * The in-memory stores and the process-local lock, for one process.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerStoresMemory: Layer.Layer<Stores> = Layer.mergeAll(
  UserTokenStore.layerMemory(),
  AccessTokenStore.layerMemory(),
  TokenLock.layerMemory
)
