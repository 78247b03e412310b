/**
 * @since 0.1.0
 */

/**
 * An embedded OpenID Provider for examples, tests and benchmarks: a real `oidc-provider` on 127.0.0.1 with
 * built-in clients, two protected resources, any user you name, counters and fault injection on its token
 * endpoint, and a browserless `authorize` for the authorization code flow.
 *
 * @since 0.1.0
 */
export * as IdentityProvider from "./IdentityProvider.js"

/**
 * A protected API for examples and tests: it accepts JWT access tokens issued for its audience by the
 * `IdentityProvider` (or any issuer you point it at) and echoes what it saw.
 *
 * @since 0.1.0
 */
export * as DemoApi from "./DemoApi.js"
