/**
 * @since 0.2.0
 */
export * as AccessTokenStoreSuite from "./AccessTokenStoreSuite.js"
/**
 * @since 0.2.0
 */
export * as TokenLockSuite from "./TokenLockSuite.js"
/**
 * @since 0.2.0
 */
export * as UserTokenStoreSuite from "./UserTokenStoreSuite.js"

/**
 * @since 0.3.0
 */
export * as SessionStoreSuite from "./SessionStoreSuite.js"
