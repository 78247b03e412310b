/**
 * Metrics of the token managers, as Effect `Metric`s: token requests by outcome, cache hits, misses and joins,
 * renewal latency, renewals in flight, lock waits, store latency and errors, refresh-token rejections and 401
 * retries. They are recorded only where `TokenMetrics.layer` (or `Enabled` set to `true`) is provided to the
 * layers that build the managers and named HTTP clients; without it nothing is measured and nothing costs.
 *
 * The library depends on no OpenTelemetry package: Effect keeps the metrics in its registry, and an exporter —
 * `@effect/opentelemetry`'s `NodeSdk.layer({ metricReader })` with `@opentelemetry/exporter-prometheus`, or any
 * reader of `Metric.snapshot` — publishes them (see docs/telemetry.md and examples/telemetry).
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `atm_token_requests` (`_total`) | counter | `grant`, `client`, `outcome` |
 * | `atm_cache_lookups` (`_total`) | counter | `grant`, `client`, `result` |
 * | `atm_renewal_duration_seconds` | histogram | `grant`, `client` |
 * | `atm_renewals_in_flight` | up-down counter (gauge) | `grant`, `client` |
 * | `atm_lock_wait_seconds` | histogram | `grant`, `client` |
 * | `atm_store_operation_duration_seconds` | histogram | `store`, `operation` |
 * | `atm_store_errors` (`_total`) | counter | `store`, `operation` |
 * | `atm_refresh_token_rejections` (`_total`) | counter | `client` |
 * | `atm_unauthorized_retries` (`_total`) | counter | `http_client` |
 *
 * Label values are bounded and never secret: a grant type, a client's configured name (client-credentials) or
 * client id (user tokens), a named HTTP client's Tag key, a fixed outcome. No subject, token or key is a label.
 *
 * @example
 * ```ts
 * import { AccessTokenManagement, TokenMetrics } from "@effect-atm/core"
 * import { Layer, Redacted } from "effect"
 *
 * const TokensLive = AccessTokenManagement.layerClientCredentialsMemory({
 *   clients: {
 *     catalog: { issuer: "https://login.example.com", clientId: "worker", clientSecret: Redacted.make("…") }
 *   }
 * }).pipe(
 *   // beneath the managers: they read it when they are built
 *   Layer.provide(TokenMetrics.layer)
 * )
 * ```
 *
 * @since 0.3.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"

/**
 * Whether the managers, caches and named HTTP clients built where it is `true` record metrics. Read once, when
 * they are built: provide it beneath their layers (`Layer.provide`), not beside them. Default: `false`.
 *
 * @since 0.3.0
 * @category references
 */
export class Enabled extends Context.Reference<Enabled>()("@effect-atm/core/TokenMetrics/Enabled", {
  defaultValue: (): boolean => false
}) {}

/**
 * Turns metrics on for the layers it is provided to.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer: Layer.Layer<never> = Layer.succeed(Enabled, true)

/**
 * The grant that obtains a cache's tokens: `client_credentials` for `ClientCredentialsTokens`, `refresh_token`
 * for `UserTokens`.
 *
 * @since 0.3.0
 * @category labels
 */
export type Grant = "client_credentials" | "refresh_token"

/**
 * How a token request ended: `success`; `rejected` (an OAuth error the provider will repeat, e.g.
 * `invalid_client`, `invalid_grant`); `transient` (unreachable, 5xx, timeout, `temporarily_unavailable`: see
 * `TokenError.isTransient`); `invalid` (a 2xx answer that is not a usable token response, or unusable provider
 * metadata); `interrupted`; `defect` (a bug: an unexpected exception).
 *
 * @since 0.3.0
 * @category labels
 */
export type Outcome = "success" | "rejected" | "transient" | "invalid" | "interrupted" | "defect"

/**
 * What a cache lookup found: `hit` (a fresh token, no renewal); `miss` (it started a renewal); `join` (it waited
 * for a renewal already in flight for its key); `backoff` (the key was backing off after a transient failure:
 * the lookup failed fast, or was served the still-valid token, without asking the provider). Forced renewals
 * (after a 401) count as a `miss` or a `join`.
 *
 * @since 0.3.0
 * @category labels
 */
export type LookupResult = "hit" | "miss" | "join" | "backoff"

/**
 * Which token store an operation was on: `access_token` (`AccessTokenStore`, client-credentials tokens) or
 * `user_token` (`UserTokenStore`). Its `operation` label is the store method: `get`, `set`, `remove` /
 * `get`, `store`, `clear`.
 *
 * @since 0.3.0
 * @category labels
 */
export type Store = "access_token" | "user_token"

const seconds = (start: number, count: number) => MetricBoundaries.exponential({ start, factor: 2, count })

/**
 * The metric keys, untagged. Each series is one of these tagged with its labels.
 *
 * @since 0.3.0
 * @category keys
 */
export const keys = {
  tokenRequests: MetricKey.counter("atm_token_requests", {
    incremental: true,
    description: "Token requests sent to the provider by the token managers, by grant, client and outcome"
  }),
  cacheLookups: MetricKey.counter("atm_cache_lookups", {
    incremental: true,
    description: "Token cache lookups by grant, client and result (hit, miss, join, backoff)"
  }),
  renewalDuration: MetricKey.histogram(
    "atm_renewal_duration_seconds",
    // 5 ms to ~41 s
    seconds(0.005, 14),
    "Duration of a token renewal (token request and store write, after the lock), in seconds"
  ),
  renewalsInFlight: MetricKey.counter("atm_renewals_in_flight", {
    description: "Token renewals in progress, by grant and client"
  }),
  lockWait: MetricKey.histogram(
    "atm_lock_wait_seconds",
    // 0.1 ms to ~52 s
    seconds(0.0001, 20),
    "Time a renewal waited for its renewal lock (in process and, with a distributed TokenLock, across processes)"
  ),
  storeDuration: MetricKey.histogram(
    "atm_store_operation_duration_seconds",
    // 0.1 ms to ~3.3 s
    seconds(0.0001, 16),
    "Duration of token store operations, by store and operation, in seconds"
  ),
  storeErrors: MetricKey.counter("atm_store_errors", {
    incremental: true,
    description: "Token store operations that failed, by store and operation"
  }),
  refreshTokenRejections: MetricKey.counter("atm_refresh_token_rejections", {
    incremental: true,
    description: "Refresh tokens the provider rejected (invalid_grant): the user must sign in again"
  }),
  unauthorizedRetries: MetricKey.counter("atm_unauthorized_retries", {
    incremental: true,
    description: "Requests of named HTTP clients answered 401, whose token was renewed and the request retried"
  })
} as const

/**
 * Token requests: `grant`, `client`, `outcome` (see `Outcome`).
 *
 * @since 0.3.0
 * @category metrics
 */
export const tokenRequests: Metric.Metric.Counter<number> = Metric.fromMetricKey(keys.tokenRequests)

/**
 * Cache lookups: `grant`, `client`, `result` (see `LookupResult`). Hit ratio: `result="hit"` over all.
 *
 * @since 0.3.0
 * @category metrics
 */
export const cacheLookups: Metric.Metric.Counter<number> = Metric.fromMetricKey(keys.cacheLookups)

/**
 * Renewal latency in seconds: `grant`, `client`. A renewal is the token request and the store write, once the
 * renewal lock is held (see `lockWait` for the time before).
 *
 * @since 0.3.0
 * @category metrics
 */
export const renewalDuration: Metric.Metric.Histogram<number> = Metric.fromMetricKey(keys.renewalDuration)

/**
 * Renewals in progress: `grant`, `client`. Goes up when a renewal starts and down when it ends.
 *
 * @since 0.3.0
 * @category metrics
 */
export const renewalsInFlight: Metric.Metric.Counter<number> = Metric.fromMetricKey(keys.renewalsInFlight)

/**
 * Seconds a renewal waited for its lock: `grant`, `client`.
 *
 * @since 0.3.0
 * @category metrics
 */
export const lockWait: Metric.Metric.Histogram<number> = Metric.fromMetricKey(keys.lockWait)

/**
 * Token store latency in seconds: `store`, `operation` (see `Store`).
 *
 * @since 0.3.0
 * @category metrics
 */
export const storeDuration: Metric.Metric.Histogram<number> = Metric.fromMetricKey(keys.storeDuration)

/**
 * Failed token store operations: `store`, `operation`.
 *
 * @since 0.3.0
 * @category metrics
 */
export const storeErrors: Metric.Metric.Counter<number> = Metric.fromMetricKey(keys.storeErrors)

/**
 * Refresh tokens rejected with `invalid_grant` (the user was signed out of this app's tokens): `client`.
 *
 * @since 0.3.0
 * @category metrics
 */
export const refreshTokenRejections: Metric.Metric.Counter<number> = Metric.fromMetricKey(
  keys.refreshTokenRejections
)

/**
 * 401 answers that made a named HTTP client renew its token and retry: `http_client` (the client's Tag key).
 *
 * @since 0.3.0
 * @category metrics
 */
export const unauthorizedRetries: Metric.Metric.Counter<number> = Metric.fromMetricKey(keys.unauthorizedRetries)
