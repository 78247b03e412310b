import {
  AccessTokenHttpClient,
  ClientCredentialsTokens,
  CurrentUser,
  TokenMetrics,
  UserTokens,
  UserTokenStore
} from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { assert, describe, layer } from "@effect/vitest"
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  type MetricData,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as oidc from "openid-client"
import { clientCredentials, clientsFor, identity, userTokens } from "../../../test/support/environment.js"
import { signIn, webClient } from "../../../test/support/login.js"
import { assertNoSecrets } from "../../../test/support/redaction.js"

/** Fresh in-memory exporters, wired through @effect/opentelemetry as an application would wire real ones. */
const makeTelemetry = () => {
  const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  // exports only when flushed: the test decides when it looks
  const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 3_600_000 })
  const spans = new InMemorySpanExporter()
  const layer = NodeSdk.layer(() => ({
    resource: { serviceName: "effect-atm-test" },
    metricReader: reader,
    spanProcessor: new SimpleSpanProcessor(spans)
  }))
  /** The metrics as the exporter received them now. */
  const exported = Effect.promise(async () => {
    await reader.forceFlush()
    const batches = metrics.getMetrics()
    return batches.at(-1)?.scopeMetrics.flatMap((scope) => scope.metrics) ?? []
  })
  return { layer, exported, spans }
}

type Labels = Record<string, string>

const pointsOf = (data: ReadonlyArray<MetricData>, name: string, labels: Labels) =>
  data.filter((metric) => metric.descriptor.name === name).flatMap((metric) =>
    (metric.dataPoints as ReadonlyArray<DataPoint<unknown>>).filter((point) =>
      Object.entries(labels).every(([key, value]) => point.attributes[key] === value)
    )
  )

/** The sum of a counter's series that carry `labels` (0 when none was exported). */
const count = (data: ReadonlyArray<MetricData>, name: string, labels: Labels): number =>
  pointsOf(data, name, labels).reduce((sum, point) => sum + (point.value as number), 0)

/** How many values a histogram's series that carry `labels` recorded. */
const observations = (data: ReadonlyArray<MetricData>, name: string, labels: Labels): number =>
  pointsOf(data, name, labels).reduce((sum, point) => sum + (point.value as Histogram).count, 0)

/** Everything an exporter could send: names, attributes, events, statuses, of metrics and spans. */
const renderExported = (data: ReadonlyArray<MetricData>, spans: ReadonlyArray<ReadableSpan>): Array<string> => [
  ...data.map((metric) =>
    JSON.stringify({
      name: metric.descriptor.name,
      description: metric.descriptor.description,
      points: metric.dataPoints.map((point) => point.attributes)
    })
  ),
  ...spans.map((span) =>
    JSON.stringify({
      name: span.name,
      attributes: span.attributes,
      events: span.events,
      status: span.status,
      links: span.links
    })
  )
]

const basicHeader = (id: string, secret: string) => Buffer.from(`${id}:${secret}`).toString("base64")
const clientSecrets = [
  IdentityProvider.Clients.machineBasic.clientSecret,
  IdentityProvider.Clients.web.clientSecret,
  basicHeader(IdentityProvider.Clients.machineBasic.clientId, IdentityProvider.Clients.machineBasic.clientSecret),
  basicHeader(IdentityProvider.Clients.web.clientId, IdentityProvider.Clients.web.clientSecret)
]

class RetriedApi extends Context.Tag("test/telemetry/RetriedApi")<
  RetriedApi,
  AccessTokenHttpClient.ClientCredentialsHttpClient
>() {}

/** Client-credentials clients of their own names (their own series), and a named HTTP client, with metrics on. */
const metered = Layer.unwrapEffect(
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const api = yield* DemoApi.DemoApi
    const { basic } = clientsFor(provider)
    return AccessTokenHttpClient.layerClientCredentials(RetriedApi, { client: "retried", baseUrl: api.url }).pipe(
      Layer.provideMerge(clientCredentials({ clients: { concurrent: basic, retried: basic } }))
    )
  })
).pipe(Layer.provide(TokenMetrics.layer))

layer(identity({ accessTokenTtl: 300 }))("TokenMetrics exported through @effect/opentelemetry", (it) => {
  describe("client credentials", () => {
    it.effect("100 concurrent gets: 1 token request, 1 miss and 99 joins or hits; a 401 retries once", () => {
      const telemetry = makeTelemetry()
      return Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const api = yield* DemoApi.DemoApi
        yield* provider.resetCounters
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const got = yield* Effect.all(Array.from({ length: 100 }, () => tokens.get("concurrent")), {
          concurrency: "unbounded"
        })
        assert.strictEqual(new Set(got.map((token) => Redacted.value(token.accessToken))).size, 1)
        assert.strictEqual(yield* provider.tokenRequests(), 1)

        const concurrent = { grant: "client_credentials", client: "concurrent" }
        let data = yield* telemetry.exported
        assert.strictEqual(count(data, "atm_token_requests", { ...concurrent, outcome: "success" }), 1)
        assert.strictEqual(count(data, "atm_token_requests", concurrent), 1, "no request of another outcome")
        assert.strictEqual(count(data, "atm_cache_lookups", { ...concurrent, result: "miss" }), 1)
        assert.strictEqual(
          count(data, "atm_cache_lookups", { ...concurrent, result: "join" }) +
            count(data, "atm_cache_lookups", { ...concurrent, result: "hit" }),
          99
        )
        assert.strictEqual(observations(data, "atm_renewal_duration_seconds", concurrent), 1)
        assert.strictEqual(observations(data, "atm_lock_wait_seconds", concurrent), 1)
        assert.strictEqual(count(data, "atm_renewals_in_flight", concurrent), 0)
        assert.strictEqual(
          observations(data, "atm_store_operation_duration_seconds", {
            store: "access_token",
            operation: "set"
          }),
          1
        )
        assert.strictEqual(count(data, "atm_store_errors", {}), 0)

        // a cached get is a hit, and asks nobody
        const hitsBefore = count(data, "atm_cache_lookups", { ...concurrent, result: "hit" })
        yield* tokens.get("concurrent")
        data = yield* telemetry.exported
        assert.strictEqual(count(data, "atm_cache_lookups", { ...concurrent, result: "hit" }), hitsBefore + 1)

        // the API rejects the token once: the named client renews it and retries, once
        const client = yield* RetriedApi
        assert.strictEqual((yield* Effect.scoped(client.get("/warm"))).status, 200)
        yield* api.rejectNextValidTokens(1)
        assert.strictEqual((yield* Effect.scoped(client.get("/data"))).status, 200)
        const retried = { grant: "client_credentials", client: "retried" }
        data = yield* telemetry.exported
        assert.strictEqual(count(data, "atm_unauthorized_retries", { http_client: "test/telemetry/RetriedApi" }), 1)
        assert.strictEqual(count(data, "atm_token_requests", { ...retried, outcome: "success" }), 2)
        assert.strictEqual(count(data, "atm_cache_lookups", { ...retried, result: "miss" }), 2)
        assert.strictEqual(yield* provider.tokenRequests(), 3)

        const spans = telemetry.spans.getFinishedSpans()
        const named = (name: string) => spans.filter((span) => span.name === name)
        assert.strictEqual(named("ClientCredentialsTokens.renew").length, 3)
        assert.deepStrictEqual(
          named("ClientCredentialsTokens.renew").map((span) => span.attributes["atm.client"]).sort(),
          ["concurrent", "retried", "retried"]
        )
        assert.strictEqual(named("TokenEndpoint.request").length, 3)
        assert.strictEqual(named("AccessTokenHttpClient.retryUnauthorized").length, 1)

        const tokensSeen = [...got, yield* tokens.get("retried")].map((token) => Redacted.value(token.accessToken))
        assertNoSecrets(renderExported(data, spans), [...clientSecrets, ...new Set(tokensSeen)])
      }).pipe(Effect.provide(metered), Effect.provide(telemetry.layer))
    })

    it.effect("without TokenMetrics.layer nothing is recorded", () => {
      const telemetry = makeTelemetry()
      return Effect.gen(function*() {
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        yield* Effect.all(Array.from({ length: 10 }, () => tokens.get("unmetered")), { concurrency: "unbounded" })
        const data = yield* telemetry.exported
        assert.strictEqual(count(data, "atm_cache_lookups", { client: "unmetered" }), 0)
        assert.strictEqual(count(data, "atm_token_requests", { client: "unmetered" }), 0)
        // spans are Effect's own and always there
        assert.isAbove(telemetry.spans.getFinishedSpans().length, 0)
      }).pipe(
        Effect.provide(
          Layer.unwrapEffect(
            Effect.map(
              IdentityProvider.IdentityProvider,
              (provider) => clientCredentials({ clients: { unmetered: clientsFor(provider).basic } })
            )
          )
        ),
        Effect.provide(telemetry.layer)
      )
    })
  })

  describe("user tokens", () => {
    it.effect("a refresh, then a refresh token the provider revoked: 1 success, 1 rejection", () => {
      const telemetry = makeTelemetry()
      return Effect.gen(function*() {
        const { response, user } = yield* signIn("alice")
        const tokens = yield* UserTokens.UserTokens
        const store = yield* UserTokenStore.UserTokenStore
        const first = yield* tokens.getFor(user)
        const refreshed = yield* tokens.getFor(user, { forceRenewal: true })

        // the provider revokes the grant's refresh token behind the application's back
        const stored = yield* store.get(CurrentUser.storeKey(user))
        const refreshToken = Option.getOrThrow(Option.flatMapNullable(stored, (token) => token.refreshToken))
        const config = yield* webClient
        yield* Effect.promise(() => oidc.tokenRevocation(config, Redacted.value(refreshToken)))
        const error = yield* Effect.flip(tokens.getFor(user, { forceRenewal: true }))
        assert.strictEqual(error._tag, "SignInRequired")

        const client = { grant: "refresh_token", client: IdentityProvider.Clients.web.clientId }
        const data = yield* telemetry.exported
        assert.strictEqual(count(data, "atm_token_requests", { ...client, outcome: "success" }), 1)
        assert.strictEqual(count(data, "atm_token_requests", { ...client, outcome: "rejected" }), 1)
        assert.strictEqual(count(data, "atm_token_requests", client), 2)
        assert.strictEqual(count(data, "atm_refresh_token_rejections", { client: client.client }), 1)
        assert.strictEqual(count(data, "atm_cache_lookups", { ...client, result: "hit" }), 1)
        assert.strictEqual(count(data, "atm_cache_lookups", { ...client, result: "miss" }), 2)
        assert.strictEqual(observations(data, "atm_renewal_duration_seconds", client), 2)
        assert.strictEqual(count(data, "atm_renewals_in_flight", client), 0)
        // seeded at sign-in, then written by the refresh; cleared by the rejection
        const userStore = { store: "user_token" }
        assert.strictEqual(
          observations(data, "atm_store_operation_duration_seconds", { ...userStore, operation: "store" }),
          2
        )
        assert.strictEqual(
          observations(data, "atm_store_operation_duration_seconds", { ...userStore, operation: "clear" }),
          1
        )
        assert.strictEqual(count(data, "atm_store_errors", userStore), 0)

        const spans = telemetry.spans.getFinishedSpans()
        const refreshes = spans.filter((span) => span.name === "UserTokens.refresh")
        assert.strictEqual(refreshes.length, 2)
        assert.deepStrictEqual(refreshes.map((span) => span.attributes["atm.client"]), ["web", "web"])

        assertNoSecrets(renderExported(data, spans), [
          ...clientSecrets,
          response.access_token,
          response.refresh_token!,
          Redacted.value(first.accessToken),
          Redacted.value(refreshed.accessToken),
          Redacted.value(refreshToken)
        ])
      }).pipe(
        Effect.provide(userTokens().pipe(Layer.provide(TokenMetrics.layer))),
        Effect.provide(telemetry.layer)
      )
    })
  })
})
