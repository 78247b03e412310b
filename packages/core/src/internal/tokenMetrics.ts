import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as MetricLabel from "effect/MetricLabel"
import type { AccessTokenStore } from "../AccessTokenStore.js"
import { isTokenError, isTransient } from "../TokenError.js"
import { type Grant, keys, type LookupResult, type Outcome, type Store } from "../TokenMetrics.js"
import type { UserTokenStore } from "../UserTokenStore.js"

/** What a token cache reports when metrics are on (see `TokenCache` internals); off, it is not given one. */
export interface CacheInstruments<K> {
  readonly lookup: (key: K, result: LookupResult) => void
  readonly lockWait: (key: K, seconds: number) => void
}

/** One series: the metric key with its labels, so that an update resolves no labels and allocates nothing. */
const series = <Type extends MetricKeyType.MetricKeyType<any, any>>(
  key: MetricKey.MetricKey<Type>,
  labels: Record<string, string>
) =>
  Metric.fromMetricKey(
    MetricKey.taggedWithLabels(key, Object.entries(labels).map(([name, value]) => MetricLabel.make(name, value)))
  )

const noLabels: ReadonlyArray<MetricLabel.MetricLabel> = []

/**
 * Records now, synchronously: on the hot path a lookup must not cost an effect of its own. The fiber's metric
 * labels (`Effect.tagMetrics`) do not apply: the library's series have exactly the documented labels.
 */
const record = <In>(metric: Metric.Metric<any, In, any>, input: In): void => metric.unsafeUpdate(input, noLabels)

/** How a token request ended, as the `outcome` label. */
export const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (exit._tag === "Success") return "success"
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") return Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "defect"
  const error = failure.value
  if (!isTokenError(error)) return "defect"
  if (isTransient(error)) return "transient"
  return error._tag === "TokenRequestRejected" ? "rejected" : "invalid"
}

/** Runs `effect`, then reports its duration in seconds of the Effect `Clock` and its exit. */
const timed = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  report: (seconds: number, exit: Exit.Exit<A, E>) => void
): Effect.Effect<A, E, R> =>
  Effect.clockWith((clock) => {
    const start = clock.unsafeCurrentTimeNanos()
    return Effect.onExit(effect, (exit) =>
      Effect.sync(() => report(Number(clock.unsafeCurrentTimeNanos() - start) / 1e9, exit)))
  })

/** The instruments of one client of a manager, made once when the manager is built. */
export interface ClientMetrics {
  readonly lookup: (result: LookupResult) => void
  readonly lockWait: (seconds: number) => void
  /** Counts a token request by its outcome. */
  readonly request: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Counts a renewal in flight while it runs, and records its duration. */
  readonly renewal: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly refreshTokenRejected: () => void
}

/** @internal */
export const client = (grant: Grant, client: string): ClientMetrics => {
  const labels = { grant, client }
  const lookups: Record<LookupResult, Metric.Metric.Counter<number>> = {
    hit: series(keys.cacheLookups, { ...labels, result: "hit" }),
    miss: series(keys.cacheLookups, { ...labels, result: "miss" }),
    join: series(keys.cacheLookups, { ...labels, result: "join" }),
    backoff: series(keys.cacheLookups, { ...labels, result: "backoff" })
  }
  const requests = new Map<Outcome, Metric.Metric.Counter<number>>()
  const requestsOf = (outcome: Outcome) => {
    let metric = requests.get(outcome)
    if (metric === undefined) {
      metric = series(keys.tokenRequests, { ...labels, outcome })
      requests.set(outcome, metric)
    }
    return metric
  }
  const lockWait = series(keys.lockWait, labels)
  const duration = series(keys.renewalDuration, labels)
  const inFlight = series(keys.renewalsInFlight, labels)
  const rejections = series(keys.refreshTokenRejections, { client })
  return {
    lookup: (result) => record(lookups[result], 1),
    lockWait: (seconds) => record(lockWait, seconds),
    request: (effect) => Effect.onExit(effect, (exit) => Effect.sync(() => record(requestsOf(outcomeOf(exit)), 1))),
    renewal: (effect) =>
      Effect.clockWith((clock) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            record(inFlight, 1)
            return clock.unsafeCurrentTimeNanos()
          }),
          () => effect,
          (start) =>
            Effect.sync(() => {
              record(inFlight, -1)
              record(duration, Number(clock.unsafeCurrentTimeNanos() - start) / 1e9)
            })
        )
      ),
    refreshTokenRejected: () => record(rejections, 1)
  }
}

/** The instruments of a manager built without metrics: they record nothing and add nothing. */
export const noClientMetrics: ClientMetrics = {
  lookup: () => {},
  lockWait: () => {},
  request: identity,
  renewal: identity,
  refreshTokenRejected: () => {}
}

/** The cache's instruments over a manager's clients, found from each key. */
export const cacheInstruments = <K>(of: (key: K) => ClientMetrics): CacheInstruments<K> => ({
  lookup: (key, result) => of(key).lookup(result),
  lockWait: (key, seconds) => of(key).lockWait(seconds)
})

/** Times one store operation, counting it as an error when it fails (not when it is interrupted). */
const operation = (store: Store, name: string) => {
  const duration = series(keys.storeDuration, { store, operation: name })
  const errors = series(keys.storeErrors, { store, operation: name })
  return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    timed(effect, (seconds, exit) => {
      record(duration, seconds)
      if (exit._tag === "Failure" && !Cause.isInterruptedOnly(exit.cause)) record(errors, 1)
    })
}

/** The store with every operation timed. */
export const accessTokenStore = (store: AccessTokenStore["Type"]): AccessTokenStore["Type"] => {
  const get = operation("access_token", "get")
  const set = operation("access_token", "set")
  const remove = operation("access_token", "remove")
  return {
    ...store,
    get: (key) => get(store.get(key)),
    set: (key, token) => set(store.set(key, token)),
    remove: (key, ifToken) => remove(store.remove(key, ifToken))
  }
}

/** The store with every operation timed. */
export const userTokenStore = (store: UserTokenStore["Type"]): UserTokenStore["Type"] => {
  const get = operation("user_token", "get")
  const write = operation("user_token", "store")
  const clear = operation("user_token", "clear")
  return {
    ...store,
    get: (user, params) => get(store.get(user, params)),
    store: (user, token, params) => write(store.store(user, token, params)),
    clear: (user, params) => clear(store.clear(user, params))
  }
}

/** Counts the 401 retries of a named HTTP client. */
export const unauthorizedRetry = (httpClient: string): () => void => {
  const retries = series(keys.unauthorizedRetries, { http_client: httpClient })
  return () => record(retries, 1)
}
