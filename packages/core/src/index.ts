/**
 * @since 0.1.0
 */
export * as AccessToken from "./AccessToken.js"
/**
 * @since 0.1.0
 */
export * as AccessTokenHttpClient from "./AccessTokenHttpClient.js"
/**
 * @since 0.1.0
 */
export * as AccessTokenManagement from "./AccessTokenManagement.js"
/**
 * @since 0.1.0
 */
export * as AccessTokenStore from "./AccessTokenStore.js"
/**
 * @since 0.1.0
 */
export * as ClientCredentialsTokens from "./ClientCredentialsTokens.js"
/**
 * @since 0.3.0
 */
export * as ClusterEvents from "./ClusterEvents.js"
/**
 * @since 0.1.0
 */
export * as CurrentUser from "./CurrentUser.js"
/**
 * @since 0.3.0
 */
export * as DPoP from "./DPoP.js"
/**
 * @since 0.3.0
 */
export * as MutualTls from "./MutualTls.js"
/**
 * @since 0.1.0
 */
export * as OidcEvents from "./OidcEvents.js"
/**
 * @since 0.1.0
 */
export * as TokenCache from "./TokenCache.js"
/**
 * @since 0.1.0
 */
export * as TokenClient from "./TokenClient.js"
/**
 * @since 0.1.0
 */
export * as TokenEndpoint from "./TokenEndpoint.js"
/**
 * @since 0.1.0
 */
export * as TokenError from "./TokenError.js"
/**
 * @since 0.3.0
 */
export * as TokenExchange from "./TokenExchange.js"
/**
 * @since 0.1.0
 */
export * as TokenLock from "./TokenLock.js"
/**
 * @since 0.3.0
 */
export * as TokenMetrics from "./TokenMetrics.js"
/**
 * @since 0.1.0
 */
export * as UserToken from "./UserToken.js"
/**
 * @since 0.1.0
 */
export * as UserTokens from "./UserTokens.js"
/**
 * @since 0.1.0
 */
export * as UserTokenStore from "./UserTokenStore.js"
/**
 * @since 0.1.0
 */
export * as TokenEncryption from "./TokenEncryption.js"
/**
 * @since 0.3.0
 */
export * as Session from "./Session.js"

/**
 * @since 0.3.0
 */
export * as SessionStore from "./SessionStore.js"
