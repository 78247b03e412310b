/**
 * @since 0.1.0
 */
export * as RedisConnection from "./RedisConnection.js"
/**
 * @since 0.1.0
 */
export * as RedisStore from "./RedisStore.js"
/**
 * @since 0.1.0
 */
export * as RedisTokenLock from "./RedisTokenLock.js"
/**
 * @since 0.3.0
 */
export * as RedisClusterEvents from "./RedisClusterEvents.js"

/**
 * @since 0.3.0
 */
export * as RedisSessionStore from "./RedisSessionStore.js"
