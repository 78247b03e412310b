/**
 * Mutual TLS (RFC 8705): the transport that presents a client certificate. Clients that authenticate with
 * `tls_client_auth` or `self_signed_tls_client_auth`, or whose tokens are bound to their certificate, make their
 * token requests over an `HttpClient` made here for their certificate; named clients use the same one for the API,
 * so that a certificate-bound token travels on a connection that presents its certificate.
 *
 * The library stays free of a platform: the application says how an `HttpClient` presents a certificate.
 *
 * @example
 * ```ts
 * import { MutualTls } from "@effect-atm/core"
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Effect, Redacted } from "effect"
 * import { Agent } from "undici"
 *
 * // Node: an undici Agent whose TLS connections present the certificate
 * const MutualTlsLive = MutualTls.layer((identity) =>
 *   Effect.sync(() =>
 *     NodeHttpClient.makeUndici(
 *       new Agent({ connect: { cert: Redacted.value(identity.certificate), key: Redacted.value(identity.key) } })
 *     )
 *   )
 * )
 * ```
 *
 * @since 0.3.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"

/**
 * A client certificate (PEM, optionally followed by its chain) and its private key (PEM).
 *
 * @since 0.3.0
 * @category models
 */
export interface ClientIdentity {
  readonly certificate: Redacted.Redacted<string>
  readonly key: Redacted.Redacted<string>
}

/**
 * How to make an `HttpClient` whose TLS connections present a client certificate. Without it (the default), a
 * client that needs mutual TLS fails its token requests with a `TokenEndpointUnavailable` that says to provide it.
 *
 * @since 0.3.0
 * @category references
 */
export class MutualTls extends Context.Reference<MutualTls>()("@effect-atm/core/MutualTls", {
  defaultValue: (): {
    readonly httpClient: ((identity: ClientIdentity) => Effect.Effect<HttpClient.HttpClient>) | undefined
  } => ({ httpClient: undefined })
}) {}

/**
 * Provides the way to make an `HttpClient` that presents a client certificate. It is called once per
 * certificate; the client is kept for the life of the token endpoint.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer = (
  httpClient: (identity: ClientIdentity) => Effect.Effect<HttpClient.HttpClient>
): Layer.Layer<MutualTls> => Layer.succeed(MutualTls, { httpClient })

/**
 * The `HttpClient` that presents `identity`, made by the `MutualTls` in the context. Without one, a defect that
 * says to provide `MutualTls.layer`: a named client configured for mutual TLS cannot work without it.
 *
 * @since 0.3.0
 * @category constructors
 */
export const httpClientFor = (identity: ClientIdentity): Effect.Effect<HttpClient.HttpClient> =>
  Effect.flatMap(MutualTls, ({ httpClient }) =>
    httpClient === undefined
      ? Effect.dieMessage(
        "A named client is configured with a client certificate (mutualTls), but no transport presents it: " +
          "provide MutualTls.layer(...)"
      )
      : httpClient(identity))
