/**
 * @since 0.1.0
 */
export * as SqlStore from "./SqlStore.js"

/**
 * @since 0.1.0
 */
export * as SqlTokenLock from "./SqlTokenLock.js"
