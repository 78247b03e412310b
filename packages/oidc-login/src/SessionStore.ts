/**
 * Where sessions live. The interface, the memory store and `SessionStoreError` are defined in
 * `@effect-atm/core/SessionStore` (so that `@effect-atm/store-sql` and `@effect-atm/store-redis` implement it without
 * depending on this package) and re-exported here.
 *
 * @since 0.1.0
 */

/**
 * @since 0.3.0
 */
export * from "@effect-atm/core/SessionStore"
