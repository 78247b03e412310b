/**
 * @since 0.1.0
 */
export * as LoginError from "./LoginError.js"
/**
 * @since 0.1.0
 */
export * as OidcLogin from "./OidcLogin.js"
/**
 * @since 0.1.0
 */
export * as Session from "./Session.js"
/**
 * @since 0.1.0
 */
export * as SessionStore from "./SessionStore.js"

/**
 * @since 0.3.0
 */
export * as HttpApiLogin from "./HttpApiLogin.js"
