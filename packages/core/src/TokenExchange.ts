/**
 * Tokens obtained on behalf of a user by token exchange (RFC 8693): the user's access token (the subject token)
 * is exchanged for a token for a downstream API — its audience, resource or scope — so that a service can call
 * that API as the user. Exchanged tokens go down the same path as every other token: cached and single-flighted
 * per user, target and parameters, renewed before they expire, and exchanged again when the user's token is
 * refreshed (the key carries the generation of the subject token).
 *
 * @example
 * ```ts
 * import { CurrentUser, TokenEndpoint, TokenExchange, UserTokens } from "@effect-atm/core"
 * import { Effect, Layer, Redacted } from "effect"
 *
 * const client = { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("…") }
 *
 * const ExchangeLive = TokenExchange.layerMemory({
 *   client,
 *   targets: { billing: { audience: "https://billing.example.com", scope: "invoices.read" } }
 * }).pipe(Layer.provideMerge(UserTokens.layerMemory({ client })), Layer.provide(TokenEndpoint.layerDefault))
 *
 * const invoicesToken = Effect.gen(function*() {
 *   const exchange = yield* TokenExchange.TokenExchange
 *   return yield* exchange.get("billing") // alice's token for the billing API
 * }).pipe(CurrentUser.provide(new CurrentUser.User({ subject: "alice" })))
 * ```
 *
 * @since 0.3.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { AccessToken, TokenRequestOptions } from "./AccessToken.js"
import { type AccessTokenStore, layerMemory as accessTokenStoreMemory } from "./AccessTokenStore.js"
import type { User } from "./CurrentUser.js"
import * as options from "./internal/options.js"
import * as internal from "./internal/tokenExchange.js"
import type * as TokenCache from "./TokenCache.js"
import type { TokenClient } from "./TokenClient.js"
import type { TokenEndpoint } from "./TokenEndpoint.js"
import {
  InvalidClientConfiguration,
  type NoCurrentUser,
  type TokenEndpointError,
  type TokenStoreError,
  type UnknownTokenClient
} from "./TokenError.js"
import { layerMemory as tokenLockMemory, type TokenLock } from "./TokenLock.js"
import type { UserTokenError, UserTokens } from "./UserTokens.js"

/**
 * Every way an exchanged token can fail to come: the user's own token could not be had (`SignInRequired`, …),
 * the exchange failed, or the target is not configured.
 *
 * @since 0.3.0
 * @category errors
 */
export type TokenExchangeError = UserTokenError | UnknownTokenClient

/**
 * What a token is exchanged for, and with which of the user's tokens.
 *
 * @since 0.3.0
 * @category models
 */
export interface Target {
  /** The downstream API's audience (sent as `audience`). */
  readonly audience?: string | undefined
  /** The downstream API's resource indicator (sent as `resource`). */
  readonly resource?: string | undefined
  readonly scope?: string | undefined
  /**
   * The type of token asked for (sent as `requested_token_type`), e.g.
   * `urn:ietf:params:oauth:token-type:access_token`.
   *
   * @since 0.3.0
   */
  readonly requestedTokenType?: string | undefined
  /** Further form parameters. */
  readonly parameters?: Readonly<Record<string, string>> | undefined
  /** Which of the user's tokens is the subject token (default: the user's default token of `UserTokens`). */
  readonly subject?: TokenRequestOptions | undefined
  /**
   * An actor token (RFC 8693 §1.1, delegation), e.g. the service's own client-credentials token, obtained for each
   * exchange.
   */
  readonly actorToken?: Effect.Effect<Redacted.Redacted<string>, TokenEndpointError | TokenStoreError> | undefined
  /**
   * The actor token as the name of a `ClientCredentialsTokens` client (which must then be in the context): its
   * cached token is the actor token of each exchange. The form of `actorToken` that configuration can give.
   *
   * @since 0.3.0
   */
  readonly actorClient?: string | undefined
  /** The actor token's type. Default: `urn:ietf:params:oauth:token-type:access_token`. */
  readonly actorTokenType?: string | undefined
}

/**
 * @since 0.3.0
 * @category models
 */
export interface Options {
  /** The client that exchanges (the provider must allow it the token-exchange grant). */
  readonly client: typeof TokenClient.Encoded | TokenClient
  /** The targets by name. */
  readonly targets: Readonly<Record<string, Target>>
  /** Renew an exchanged token this long before it expires (capped at half its lifetime). Default: 60 seconds. */
  readonly renewBefore?: Duration.DurationInput | undefined
  /** Backoff after transient failures of the provider. Default: `TokenCache.defaultBackoff`. */
  readonly backoff?: TokenCache.Backoff | false | undefined
}

/**
 * @since 0.3.0
 * @category tags
 */
export class TokenExchange extends Context.Tag("@effect-atm/core/TokenExchange")<TokenExchange, {
  /** The configured target names. */
  readonly targets: ReadonlyArray<string>
  /** The current user's token for a target: cached, or exchanged once for all concurrent callers. */
  readonly get: (target: string, options?: TokenExchange.GetOptions) => Effect.Effect<AccessToken, TokenExchangeError>
  /** `get` for an explicit user. */
  readonly getFor: (
    user: User,
    target: string,
    options?: TokenExchange.GetOptions
  ) => Effect.Effect<AccessToken, Exclude<TokenExchangeError, NoCurrentUser>>
  /** Replaces a token the downstream API rejected (once: if it was already replaced, returns the replacement). */
  readonly renewFor: (
    user: User,
    target: string,
    rejected: AccessToken,
    options?: TokenRequestOptions
  ) => Effect.Effect<AccessToken, Exclude<TokenExchangeError, NoCurrentUser>>
}>() {}

/**
 * @since 0.3.0
 * @category models
 */
export declare namespace TokenExchange {
  /**
   * Parameters of one request, overriding the target's (each part of the cache key), and whether to exchange
   * even though the cached token is fresh.
   *
   * @since 0.3.0
   * @category models
   */
  export interface GetOptions extends TokenRequestOptions {
    readonly forceRenewal?: boolean | undefined
  }
}

/**
 * Builds the service over the `TokenEndpoint`, `UserTokens` (for the subject tokens), an `AccessTokenStore` and a
 * `TokenLock`.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make: (options: Options) => Effect.Effect<
  TokenExchange["Type"],
  InvalidClientConfiguration,
  TokenEndpoint | UserTokens | AccessTokenStore | TokenLock | Scope.Scope
> = internal.make

/**
 * The service over the `AccessTokenStore` and `TokenLock` in the context.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (
  options: Options
): Layer.Layer<TokenExchange, InvalidClientConfiguration, TokenEndpoint | UserTokens | AccessTokenStore | TokenLock> =>
  Layer.scoped(TokenExchange, internal.make(options))

/**
 * The service for one process, with an in-memory store for the exchanged tokens and the process-local lock.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerMemory = (
  options: Options
): Layer.Layer<TokenExchange, InvalidClientConfiguration, TokenEndpoint | UserTokens> =>
  layer(options).pipe(Layer.provide([accessTokenStoreMemory(), tokenLockMemory]))

/**
 * Reads one target from Effect `Config`, nested under its name (from the environment: `BILLING_AUDIENCE`, …):
 * `AUDIENCE`, `RESOURCE`, `SCOPE`, `REQUESTED_TOKEN_TYPE`, `SUBJECT_RESOURCE` and `SUBJECT_SCOPE` (which of the
 * user's tokens is exchanged), `ACTOR_CLIENT` (a `ClientCredentialsTokens` client whose token is the actor token)
 * and `ACTOR_TOKEN_TYPE`, all optional. The values are checked when the layer is built (`layerConfig`), with
 * errors that name the target and the field.
 *
 * @since 0.3.0
 * @category config
 */
export const targetConfig = (name: string): Config.Config<Target> =>
  Config.all({
    audience: Config.option(Config.string("AUDIENCE")).pipe(
      Config.withDescription("Audience of the downstream API (sent as audience)")
    ),
    resource: Config.option(Config.string("RESOURCE")).pipe(
      Config.withDescription("Resource indicator of the downstream API, an absolute URI (sent as resource)")
    ),
    scope: Config.option(Config.string("SCOPE")).pipe(Config.withDescription("Scope asked for, space-separated")),
    requestedTokenType: Config.option(Config.string("REQUESTED_TOKEN_TYPE")).pipe(
      Config.withDescription("Token type asked for, a URI (sent as requested_token_type)")
    ),
    subjectResource: Config.option(Config.string("SUBJECT_RESOURCE")).pipe(
      Config.withDescription("Resource of the user's token that is exchanged (default: the user's default token)")
    ),
    subjectScope: Config.option(Config.string("SUBJECT_SCOPE")).pipe(
      Config.withDescription("Scope of the user's token that is exchanged (default: the user's default token)")
    ),
    actorClient: Config.option(Config.string("ACTOR_CLIENT")).pipe(
      Config.withDescription("ClientCredentialsTokens client whose token is the actor token (delegation)")
    ),
    actorTokenType: Config.option(Config.string("ACTOR_TOKEN_TYPE")).pipe(
      Config.withDescription("Type of the actor token, a URI (default: access token)")
    )
  }).pipe(
    Config.map(({ subjectResource, subjectScope, ...fields }): Target => {
      const subject = { ...options.present("resource", subjectResource), ...options.present("scope", subjectScope) }
      return {
        ...options.present("audience", fields.audience),
        ...options.present("resource", fields.resource),
        ...options.present("scope", fields.scope),
        ...options.present("requestedTokenType", fields.requestedTokenType),
        ...options.present("actorClient", fields.actorClient),
        ...options.present("actorTokenType", fields.actorTokenType),
        ...(Object.keys(subject).length === 0 ? {} : { subject })
      }
    }),
    Config.nested(name)
  )

/**
 * The service with its targets read from Effect `Config` (see `targetConfig`); the client that exchanges and the
 * other options are given in code (the client can come from `TokenClient.config`). A target for which nothing is
 * configured, or an invalid value, fails the layer with `InvalidClientConfiguration` naming the target and the
 * field (`targets.BILLING.resource`); a value of the wrong form fails it with a `ConfigError` naming the variable.
 *
 * @example
 * ```ts
 * import { AccessTokenHttpClient, TokenExchange } from "@effect-atm/core"
 * import { Context, Layer, Redacted } from "effect"
 *
 * class BillingApi extends Context.Tag("BillingApi")<BillingApi, AccessTokenHttpClient.TokenExchangeHttpClient>() {}
 *
 * // BILLING_AUDIENCE=https://billing.example.com BILLING_SCOPE=invoices.read
 * // BILLING_ACTOR_CLIENT=backend (optional: a ClientCredentialsTokens client's token as the actor token)
 * const BillingApiLive = AccessTokenHttpClient.layerTokenExchange(BillingApi, {
 *   target: "BILLING",
 *   baseUrl: "https://billing.example.com"
 * }).pipe(
 *   Layer.provideMerge(TokenExchange.layerConfig(["BILLING"], {
 *     client: { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("…") }
 *   }))
 * )
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const layerConfig = (
  names: ReadonlyArray<string>,
  options: Omit<Options, "targets">
): Layer.Layer<
  TokenExchange,
  InvalidClientConfiguration | ConfigError.ConfigError,
  TokenEndpoint | UserTokens | AccessTokenStore | TokenLock
> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const targets = yield* Config.all(Object.fromEntries(names.map((name) => [name, targetConfig(name)])))
    for (const [name, target] of Object.entries(targets)) {
      const { audience, requestedTokenType, resource, scope } = target
      if ([audience, resource, scope, requestedTokenType].every((value) => value === undefined)) {
        // most likely a misspelled prefix: an exchange for nothing in particular is not what was meant
        return yield* new InvalidClientConfiguration({
          client: "TokenExchange",
          field: `targets.${name}`,
          reason: `nothing is configured for it: set at least one of AUDIENCE, RESOURCE, SCOPE or ` +
            `REQUESTED_TOKEN_TYPE under ${name} (e.g. ${name}_AUDIENCE)`
        })
      }
    }
    return layer({ ...options, targets })
  }))
