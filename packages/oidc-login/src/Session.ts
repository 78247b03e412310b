/**
 * What the server keeps for a signed-in browser. Defined in `@effect-atm/core/Session` and re-exported here. A
 * sign-in in progress is no longer stored: it is sealed in the pre-login cookie.
 *
 * @since 0.1.0
 */

/**
 * @since 0.3.0
 */
export * from "@effect-atm/core/Session"
