/**
 * One layer per use case, wiring the token endpoint, the managers and their stores.
 *
 * @since 0.1.0
 */
import * as Layer from "effect/Layer"
import * as ClientCredentialsTokens from "./ClientCredentialsTokens.js"
import type { OidcEvents } from "./OidcEvents.js"
import type { TokenClient } from "./TokenClient.js"
import * as TokenEndpoint from "./TokenEndpoint.js"
import type { InvalidClientConfiguration } from "./TokenError.js"
import * as UserTokens from "./UserTokens.js"
import type { UserTokenStore } from "./UserTokenStore.js"

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
 * Everything a server that calls APIs for its signed-in users needs, over a `UserTokenStore` of your choice:
 * `UserTokens`, `OidcEvents`, `ClientCredentialsTokens` (with the app's own client under `appClient`) and the
 * `TokenEndpoint`. The counterpart of .NET's
 * `AddOpenIdConnectAccessTokenManagement().AddBlazorServerAccessTokenManagement<TStore>()`.
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, UserTokenStore } from "@effect-atm/core"
 * import { Layer, Redacted } from "effect"
 *
 * const TokensLive = AccessTokenManagement.layerServer({
 *   client: { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("…") },
 *   resource: "https://api.example.com"
 * }).pipe(Layer.provide(UserTokenStore.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerServer = (
  options: ServerOptions
): Layer.Layer<
  | UserTokens.UserTokens
  | OidcEvents
  | ClientCredentialsTokens.ClientCredentialsTokens
  | TokenEndpoint.TokenEndpoint,
  InvalidClientConfiguration,
  UserTokenStore
> => {
  const client = options.client as typeof TokenClient.Encoded
  const managers = Layer.merge(
    UserTokens.layer(options),
    ClientCredentialsTokens.layer({
      renewBefore: options.renewBefore,
      clients: {
        ...options.clients,
        [appClient]: {
          ...client,
          ...(options.appScope === undefined ? {} : { scope: options.appScope }),
          ...(options.resource === undefined ? {} : { resource: options.resource })
        }
      }
    })
  )
  return Layer.provideMerge(managers, TokenEndpoint.layer(options.endpoint))
}

/**
 * Everything a worker that calls APIs with its own client-credentials tokens needs.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClientCredentials = (
  options: ClientCredentialsTokens.Options & { readonly endpoint?: TokenEndpoint.Options | undefined }
): Layer.Layer<
  ClientCredentialsTokens.ClientCredentialsTokens | TokenEndpoint.TokenEndpoint,
  InvalidClientConfiguration
> => Layer.provideMerge(ClientCredentialsTokens.layer(options), TokenEndpoint.layer(options.endpoint))
