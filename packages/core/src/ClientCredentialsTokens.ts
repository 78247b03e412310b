/**
 * Tokens a service obtains for itself with the client-credentials grant, from named client configurations.
 *
 * @example
 * ```ts
 * import { ClientCredentialsTokens, TokenEndpoint } from "@effect-atm/core"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * const Tokens = ClientCredentialsTokens.layerMemory({
 *   clients: {
 *     catalog: {
 *       issuer: "https://login.example.com",
 *       clientId: "worker",
 *       clientSecret: Redacted.make("…"),
 *       scope: "catalog.read"
 *     }
 *   }
 * }).pipe(Layer.provide(TokenEndpoint.layerDefault))
 *
 * const program = Effect.gen(function*() {
 *   const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
 *   const token = yield* tokens.get("catalog")
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { AccessToken, TokenRequestOptions } from "./AccessToken.js"
import { AccessTokenStore, layerMemory as accessTokenStoreMemory } from "./AccessTokenStore.js"
import * as DPoP from "./DPoP.js"
import { discover, renewalLock } from "./internal/deployment.js"
import { clientCredentialsKey } from "./internal/keys.js"
import * as validate from "./internal/options.js"
import * as tokenCache from "./internal/tokenCache.js"
import * as tokenMetrics from "./internal/tokenMetrics.js"
import type * as TokenCache from "./TokenCache.js"
import { config as tokenClientConfig, decodeClient, tokenClientFields } from "./TokenClient.js"
import { type Discovery, Grant, TokenEndpoint } from "./TokenEndpoint.js"
import {
  type DiscoveryFailed,
  type InvalidClientConfiguration,
  type TokenEndpointError,
  type TokenManagerClosed,
  type TokenStoreError,
  UnknownTokenClient
} from "./TokenError.js"
import { layerMemory as tokenLockMemory, TokenLock } from "./TokenLock.js"
import * as TokenMetrics from "./TokenMetrics.js"

/**
 * A named client-credentials client: the token client, and the parameters its tokens are requested with by
 * default (a request may override any of them).
 *
 * @since 0.1.0
 * @category models
 */
export class ClientCredentialsClient
  extends Schema.Class<ClientCredentialsClient>("@effect-atm/core/ClientCredentialsClient")({
    ...tokenClientFields,
    scope: Schema.optional(Schema.String),
    resource: Schema.optional(Schema.String),
    parameters: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
  })
{}

/**
 * The input form of a client configuration, as given in code.
 *
 * @since 0.1.0
 * @category models
 */
export type ClientCredentialsClientInput = typeof ClientCredentialsClient.Encoded

/**
 * Every way a client-credentials token can fail to come.
 *
 * @since 0.1.0
 * @category errors
 */
export type ClientCredentialsTokenError =
  | TokenEndpointError
  | TokenStoreError
  | UnknownTokenClient
  | TokenManagerClosed

/**
 * @since 0.1.0
 * @category tags
 */
export class ClientCredentialsTokens extends Context.Tag("@effect-atm/core/ClientCredentialsTokens")<
  ClientCredentialsTokens,
  {
    /** The configured client names. */
    readonly clients: ReadonlyArray<string>
    /** A fresh token for the client and parameters: cached, or obtained once for all concurrent callers. */
    readonly get: (
      client: string,
      options?: ClientCredentialsTokens.GetOptions
    ) => Effect.Effect<AccessToken, ClientCredentialsTokenError>
    /**
     * Replaces a token the API rejected. If the cached token is no longer `rejected` (someone renewed it
     * already), returns the cached one without a request.
     */
    readonly renew: (
      client: string,
      rejected: AccessToken,
      options?: TokenRequestOptions
    ) => Effect.Effect<AccessToken, ClientCredentialsTokenError>
    /** Drops the cached token; with `ifToken`, only if it is still that token. */
    readonly invalidate: (
      client: string,
      options?: TokenRequestOptions & { readonly ifToken?: AccessToken | undefined }
    ) => Effect.Effect<void, TokenStoreError>
  }
>() {}

/**
 * @since 0.2.0
 * @category models
 */
export declare namespace ClientCredentialsTokens {
  /**
   * Options of a single token request: the parameters (each part of the cache key) and whether to renew even a
   * fresh token.
   *
   * @since 0.2.0
   * @category models
   */
  export interface GetOptions extends TokenRequestOptions {
    readonly forceRenewal?: boolean | undefined
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly clients: Readonly<Record<string, ClientCredentialsClientInput | ClientCredentialsClient>>
  /** Renew a token this long before it expires (capped at half its lifetime). Default: 60 seconds. */
  readonly renewBefore?: Duration.DurationInput | undefined
  /**
   * How a client backs off after the provider failed transiently: calls fail fast with the same error (or get
   * the still-valid token) instead of asking again. `false` turns it off. Default: `TokenCache.defaultBackoff`.
   *
   * @since 0.2.0
   */
  readonly backoff?: TokenCache.Backoff | false | undefined
  /**
   * When the clients' provider metadata is discovered: `"eager"` (the default) as the layer is built, so that an
   * unreachable, mismatched or malformed issuer fails the layer with `DiscoveryFailed` at start-up; `"lazy"` at
   * the first request (when the application must start while the provider is down).
   *
   * @since 0.3.0
   */
  readonly discovery?: Discovery | undefined
}

interface Key {
  readonly name: string
  readonly client: ClientCredentialsClient
  readonly options: TokenRequestOptions
  readonly id: string
  /** The client's instruments, found once per key rather than at every lookup. */
  readonly metrics: tokenMetrics.ClientMetrics
}

const effectiveOptions = (client: ClientCredentialsClient, options: TokenRequestOptions | undefined) => {
  const parameters = client.parameters === undefined && options?.parameters === undefined
    ? undefined
    : { ...client.parameters, ...options?.parameters }
  return {
    scope: options?.scope ?? client.scope,
    resource: options?.resource ?? client.resource,
    parameters
  }
}

const decode = (name: string, input: ClientCredentialsClientInput | ClientCredentialsClient) =>
  decodeClient(
    ClientCredentialsClient,
    name,
    input instanceof ClientCredentialsClient ? Schema.encodeSync(ClientCredentialsClient)(input) : input
  )

/**
 * Builds the manager over the `TokenEndpoint`, an `AccessTokenStore` and a `TokenLock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = Effect.fnUntraced(function*(options: Options) {
  const endpoint = yield* TokenEndpoint
  const metered = yield* TokenMetrics.Enabled
  const store = metered ? tokenMetrics.accessTokenStore(yield* AccessTokenStore) : yield* AccessTokenStore
  const lock = yield* renewalLock("ClientCredentialsTokens", store, yield* TokenLock)
  const renewBefore = yield* validate.duration(
    "ClientCredentialsTokens",
    "renewBefore",
    options.renewBefore,
    "60 seconds"
  )
  const backoff = yield* validate.backoff("ClientCredentialsTokens", options.backoff)
  const clients = new Map<string, ClientCredentialsClient>()
  // one DPoP proof key per client, for the life of the manager; a token carries its key into the store
  const proofKeys = new Map<string, Redacted.Redacted<string>>()
  for (const [name, input] of Object.entries(options.clients)) {
    const client = yield* decode(name, input)
    clients.set(name, client)
    const algorithm = DPoP.algorithmOf(client.dpop)
    if (algorithm !== undefined) proofKeys.set(name, yield* DPoP.generateKey(algorithm))
  }
  const names = [...clients.keys()]
  yield* validate.discovery("ClientCredentialsTokens", options.discovery)
  yield* discover(endpoint, options.discovery, clients.values())
  const metrics = new Map(names.map((name) =>
    [
      name,
      metered ? tokenMetrics.client("client_credentials", name) : tokenMetrics.noClientMetrics
    ] as const
  ))
  const metricsOf = (key: Key) => key.metrics

  const cache = yield* tokenCache.make<Key, AccessToken, TokenEndpointError | TokenStoreError>({
    keyOf: (key) => key.id,
    read: (key) => store.get(key.id),
    accessToken: (token) => token,
    renew: (key) =>
      metricsOf(key).request(
        endpoint.request(
          key.client,
          Grant.ClientCredentials({ options: key.options, dpopKey: proofKeys.get(key.name) })
        )
      ).pipe(
        Effect.map((response) => response.accessToken),
        Effect.tap((token) => store.set(key.id, token)),
        metricsOf(key).renewal,
        Effect.withSpan("ClientCredentialsTokens.renew", { attributes: { "atm.client": key.name } })
      )
  }, {
    renewBefore,
    backoff,
    lock,
    // only this manager replaces these tokens: serve hits from memory, even over a shared store
    memoize: true
  }, metered ? tokenMetrics.cacheInstruments(metricsOf) : undefined)

  const makeKey = (name: string, client: ClientCredentialsClient, options: TokenRequestOptions | undefined): Key => {
    const effective = effectiveOptions(client, options)
    return { name, client, options: effective, id: clientCredentialsKey(name, effective), metrics: metrics.get(name)! }
  }
  // a plain `get(name)` is the hot path of every named HTTP client: its key and its whole lookup are made once,
  // so that a hit is a clock read and a map lookup
  const defaults = new Map([...clients].map(([name, client]) => {
    const key = makeKey(name, client, undefined)
    return [name, { key: Effect.succeed(key), get: cache.get(key) }] as const
  }))

  const keyFor = (name: string, options: TokenRequestOptions | undefined): Effect.Effect<Key, UnknownTokenClient> => {
    if (
      options === undefined ||
      (options.scope === undefined && options.resource === undefined && options.parameters === undefined)
    ) {
      const key = defaults.get(name)?.key
      if (key !== undefined) return key
    }
    const client = clients.get(name)
    if (client === undefined) return Effect.fail(new UnknownTokenClient({ client: name, known: names }))
    return Effect.succeed(makeKey(name, client, options))
  }

  return ClientCredentialsTokens.of({
    clients: names,
    get: (name, options) => {
      if (options === undefined) {
        const get = defaults.get(name)?.get
        if (get !== undefined) return get
      }
      return Effect.flatMap(keyFor(name, options), (key) => options?.forceRenewal ? cache.renew(key) : cache.get(key))
    },
    renew: (name, rejected, options) => Effect.flatMap(keyFor(name, options), (key) => cache.renew(key, rejected)),
    invalidate: (name, options) =>
      Effect.flatMap(keyFor(name, options), (key) =>
        Effect.zipRight(
          cache.forget(key),
          store.remove(key.id, options?.ifToken)
        )).pipe(
          Effect.catchTag("UnknownTokenClient", () => Effect.void)
        )
  })
})

/**
 * The manager over the `AccessTokenStore` and `TokenLock` in the context: `AccessTokenStore.layerMemory()` and
 * `TokenLock.layerMemory` for one process (or use `layerMemory`), a shared store and a distributed lock for several.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<
  ClientCredentialsTokens,
  InvalidClientConfiguration | DiscoveryFailed,
  TokenEndpoint | AccessTokenStore | TokenLock
> => Layer.scoped(ClientCredentialsTokens, make(options))

/**
 * The manager for one process, with an in-memory token store and the process-local lock.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory = (
  options: Options
): Layer.Layer<ClientCredentialsTokens, InvalidClientConfiguration | DiscoveryFailed, TokenEndpoint> =>
  layer(options).pipe(Layer.provide([accessTokenStoreMemory(), tokenLockMemory]))

/**
 * Reads one client's configuration from Effect `Config`: `ISSUER` or `TOKEN_ENDPOINT`, `REVOCATION_ENDPOINT`,
 * `CLIENT_ID`, `CLIENT_SECRET`, `AUTHENTICATION`, `PRIVATE_KEY`, `PRIVATE_KEY_ID`, `SIGNING_ALGORITHM`,
 * `CLIENT_CERTIFICATE`, `CLIENT_CERTIFICATE_KEY`, `ALLOW_INSECURE_REQUESTS`, `SCOPE`, `RESOURCE`, nested under the
 * client's name (from the environment: `WORKER_CLIENT_ID`, …). Decoding (URLs, cross-field rules) happens when the
 * layer is built, with errors that name the client and the field.
 *
 * @since 0.1.0
 * @category config
 */
export const clientConfig = (name: string): Config.Config<ClientCredentialsClientInput> =>
  Config.all({
    client: tokenClientConfig,
    scope: Config.option(Config.string("SCOPE")),
    resource: Config.option(Config.string("RESOURCE"))
  }).pipe(
    Config.map(({ client, resource, scope }): ClientCredentialsClientInput => ({
      ...client,
      ...(scope._tag === "Some" ? { scope: scope.value } : {}),
      ...(resource._tag === "Some" ? { resource: resource.value } : {})
    })),
    Config.nested(name)
  )

/**
 * The manager with clients read from Effect `Config` (see `clientConfig`); an invalid value fails the layer,
 * naming the client and the field.
 *
 * @example
 * ```ts
 * import { AccessTokenStore, ClientCredentialsTokens, TokenEndpoint, TokenLock } from "@effect-atm/core"
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Layer } from "effect"
 *
 * // CATALOG_ISSUER=https://login.example.com CATALOG_CLIENT_ID=worker CATALOG_CLIENT_SECRET=… CATALOG_SCOPE=catalog.read
 * // BILLING_TOKEN_ENDPOINT=https://billing.example.com/oauth/token BILLING_CLIENT_ID=… BILLING_CLIENT_SECRET=…
 * const TokensLive = ClientCredentialsTokens.layerConfig(["CATALOG", "BILLING"]).pipe(
 *   Layer.provide([TokenEndpoint.layerDefault, AccessTokenStore.layerMemory(), TokenLock.layerMemory]),
 *   Layer.provide(NodeHttpClient.layerUndici)
 * )
 * // tokens.get("CATALOG"), AccessTokenHttpClient.layerClientCredentials(Tag, { client: "BILLING", … })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  names: ReadonlyArray<string>,
  options?: Omit<Options, "clients">
): Layer.Layer<
  ClientCredentialsTokens,
  InvalidClientConfiguration | DiscoveryFailed | ConfigError.ConfigError,
  TokenEndpoint | AccessTokenStore | TokenLock
> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all(Object.fromEntries(names.map((name) => [name, clientConfig(name)]))),
      (clients) => layer({ ...options, clients })
    )
  )
