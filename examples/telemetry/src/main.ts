/**
 * The worker of examples/worker with its telemetry on: the token managers' metrics (`TokenMetrics`) served to
 * Prometheus by `@opentelemetry/exporter-prometheus` through `@effect/opentelemetry`, and every span printed as
 * one line on the console.
 *
 * It starts an embedded OpenID Provider and demo API on 127.0.0.1 (5-second tokens: renewals while you watch),
 * opens with a burst of concurrent calls on a cold cache (one token request, the others join it), then calls the
 * API every WORKER_INTERVAL (default "1 second"); every fifth call the API rejects the token once, so that the
 * named client renews it and retries. WORKER_CALLS (default 0: until Ctrl+C) bounds the calls.
 *
 *   npm run telemetry                               # from the repository root
 *   curl -s http://127.0.0.1:9464/metrics | grep atm_
 *
 * METRICS_PORT (default 9464) and METRICS_HOST (default 127.0.0.1) say where /metrics is served.
 */
import {
  AccessTokenHttpClient,
  AccessTokenStore,
  ClientCredentialsTokens,
  TokenEndpoint,
  TokenLock,
  TokenMetrics
} from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { SpanKind, SpanStatusCode } from "@opentelemetry/api"
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"

class DemoApiClient extends Context.Tag("example/DemoApiClient")<
  DemoApiClient,
  AccessTokenHttpClient.ClientCredentialsHttpClient
>() {}

const settings = Config.all({
  calls: Config.integer("WORKER_CALLS").pipe(Config.withDefault(0)),
  interval: Config.duration("WORKER_INTERVAL").pipe(Config.withDefault("1 second")),
  metricsPort: Config.port("METRICS_PORT").pipe(Config.withDefault(9464)),
  metricsHost: Config.string("METRICS_HOST").pipe(Config.withDefault("127.0.0.1"))
})

/**
 * Prints each finished span on one line: name, duration, status and attributes (which never hold a secret; HTTP
 * headers are left out for brevity). The demo API's server spans are left out: in a real deployment they belong to
 * another service.
 */
class OneLineSpanExporter implements SpanExporter {
  export(spans: Array<ReadableSpan>, done: (result: { code: 0 }) => void): void {
    for (const span of spans) {
      if (span.kind === SpanKind.SERVER) continue
      const millis = span.duration[0] * 1e3 + span.duration[1] / 1e6
      const status = span.status.code === SpanStatusCode.ERROR ? ` ERROR ${span.status.message ?? ""}` : ""
      const attributes = Object.fromEntries(
        Object.entries(span.attributes).filter(([name]) => !/^http\.(request|response)\.header\./.test(name))
      )
      console.log(`span ${span.name} ${millis.toFixed(1)} ms${status} ${JSON.stringify(attributes)}`)
    }
    done({ code: 0 }) // ExportResultCode.SUCCESS
  }
  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

/** OpenTelemetry: metrics pulled by Prometheus from METRICS_HOST:METRICS_PORT/metrics, spans to the console. */
const Telemetry = Layer.unwrapEffect(Effect.map(settings, ({ metricsHost, metricsPort }) =>
  NodeSdk.layer(() => ({
    resource: { serviceName: "effect-atm-telemetry-example" },
    // exporter-prometheus 0.223.0 pins sdk-metrics 2.12.0 beside the workspace's 2.12.1: the same reader, typed by
    // the other copy's declarations
    metricReader: new PrometheusExporter({ host: metricsHost, port: metricsPort }) as unknown as MetricReader,
    spanProcessor: new BatchSpanProcessor(new OneLineSpanExporter(), { scheduledDelayMillis: 500 })
  }))))

/** The embedded provider and API, the worker's client-credentials client and its named HTTP client. */
const Worker = Layer.unwrapEffect(Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  const api = yield* DemoApi.DemoApi
  yield* Effect.logInfo(`Embedded OpenID Provider at ${provider.issuer}, demo API at ${api.url}`)
  const tokens = ClientCredentialsTokens.layer({
    clients: {
      worker: {
        issuer: provider.issuer,
        clientId: IdentityProvider.Clients.machineBasic.clientId,
        clientSecret: Redacted.make(IdentityProvider.Clients.machineBasic.clientSecret),
        scope: "api.read"
      }
    }
  })
  return AccessTokenHttpClient.layerClientCredentials(DemoApiClient, { client: "worker", baseUrl: api.url }).pipe(
    Layer.provideMerge(tokens)
  )
})).pipe(
  Layer.provideMerge(Layer.mergeAll(DemoApi.layer(), TokenEndpoint.layerDefault)),
  Layer.provideMerge(IdentityProvider.layer({ accessTokenTtl: 5 })),
  Layer.provide([NodeHttpClient.layerUndici, AccessTokenStore.layerMemory(), TokenLock.layerMemory]),
  // beneath the managers and the named client: they read it when they are built
  Layer.provide(TokenMetrics.layer),
  Layer.orDie
)

const call = (path: string) =>
  Effect.flatMap(DemoApiClient, (client) =>
    client.get(path).pipe(
      Effect.flatMap(HttpClientResponse.filterStatusOk),
      Effect.asVoid,
      Effect.scoped
    ))

const main = Effect.gen(function*() {
  const { calls, interval, metricsHost, metricsPort } = yield* settings
  const api = yield* DemoApi.DemoApi
  yield* Effect.logInfo(`Prometheus metrics at http://${metricsHost}:${metricsPort}/metrics`)
  // a cold cache and 20 concurrent calls: one token request, one miss, the other lookups join it
  yield* Effect.all(Array.from({ length: 20 }, () => call("/burst")), { concurrency: "unbounded", discard: true })
  let n = 0
  const once = Effect.suspend(() => {
    n++
    // every fifth call the API rejects the (valid) token once: the client renews it and retries
    return (n % 5 === 0 ? api.rejectNextValidTokens(1) : Effect.void).pipe(
      Effect.zipRight(call("/data")),
      Effect.tap(() => Effect.logInfo(`call ${n}: 200 OK${n % 5 === 0 ? " (after a 401 and a retry)" : ""}`))
    )
  })
  const schedule = calls > 0
    ? Schedule.spaced(interval).pipe(Schedule.intersect(Schedule.recurs(calls - 1)), Schedule.asVoid)
    : Schedule.asVoid(Schedule.spaced(interval))
  yield* once.pipe(Effect.repeat(schedule))
})

main.pipe(Effect.provide(Worker), Effect.provide(Telemetry), NodeRuntime.runMain)
