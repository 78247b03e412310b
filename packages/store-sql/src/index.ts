/**
 * @since 0.1.0
 */
export * as SqlStore from "./SqlStore.js"

/**
 * @since 0.1.0
 */
export * as SqlTokenLock from "./SqlTokenLock.js"
/**
 * @since 0.3.0
 */
export * as PgClusterEvents from "./PgClusterEvents.js"

/**
 * @since 0.3.0
 */
export * as SqlSessionStore from "./SqlSessionStore.js"
