/**
 * Issue 11: user tokens on a cluster. Targets: Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (database
 * `test`), this run's own key prefix, channels and tables, removed at the end. Tokens encrypted at rest.
 *
 * P12: `UserTokens.get` of a signed-in user (a fresh token: no refresh), through the near cache over Redis and over
 *      PostgreSQL, beside the memory store, same run, interleaved in rounds (goal: ratio ≤ 1.5). Each row's data
 *      also has the same get on the shared store without a near cache (a round trip and a decryption per get).
 * P13: two instances sharing the store and the bus (each with its own connections, in this process, on loopback):
 *      B keeps getting the user's token (a get every millisecond), A signs the user out (`OidcEvents.signingOut`:
 *      under the renewal lock, clear the store and publish, then revoke at the provider); the latency is from A's
 *      sign-out call to B's first `SignInRequired`, and from A's own delivery of its publish to it. 20 sign-outs
 *      per backend (goal: median ≤ 100 ms).
 */
import {
  ClusterEvents,
  CurrentUser,
  OidcEvents,
  TokenEncryption,
  TokenEndpoint,
  TokenLock,
  UserTokens,
  UserTokenStore
} from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import { RedisClusterEvents, RedisConnection, RedisStore, RedisTokenLock } from "@effect-atm/store-redis"
import { PgClusterEvents, SqlStore, SqlTokenLock } from "@effect-atm/store-sql"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import { signIn } from "../test/support/login.js"
import { deleteRedisKeysAfter, dropPgTablesAfter, keys, pgUrl, redisUrl, runId } from "../test/support/stores.js"
import { fmt, median, now, percentile, type Row } from "./support.js"

const id = runId()
const redisPrefix = `bench:${id}:cluster:`
const pgPrefix = `b${id}_cluster_`

type StoreLayer = Layer.Layer<UserTokenStore.UserTokenStore | TokenLock.TokenLock | ClusterEvents.ClusterEvents>

const Encryption = TokenEncryption.layer({ key: { key: keys.a } }).pipe(Layer.orDie)

/** One instance's store, lock and bus on Redis: a connection of its own; the near cache in front or not. */
const redis = (near: boolean): StoreLayer =>
  Layer.merge(
    RedisStore.layerUserTokenStore({ prefix: redisPrefix }).pipe(near ? UserTokenStore.withNearCache() : (l) => l),
    RedisTokenLock.layer({ prefix: redisPrefix })
  ).pipe(
    Layer.provideMerge(RedisClusterEvents.layer({ prefix: redisPrefix })),
    Layer.provide(RedisConnection.layer({ url: redisUrl })),
    Layer.provide(Encryption),
    Layer.orDie
  )

/** The same on PostgreSQL: a pool of its own. */
const pg = (near: boolean): StoreLayer =>
  Layer.merge(
    SqlStore.layer({ tablePrefix: pgPrefix }).pipe(near ? UserTokenStore.withNearCache() : (l) => l),
    SqlTokenLock.layer()
  ).pipe(
    Layer.provideMerge(PgClusterEvents.layer({ tablePrefix: pgPrefix })),
    Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl) })),
    Layer.provide(Encryption),
    Layer.orDie
  )

const memory: StoreLayer = Layer.mergeAll(
  UserTokenStore.layerMemory(),
  TokenLock.layerMemory,
  ClusterEvents.layerMemory
)

/** An instance: the user token manager over the store layer, with its own token endpoint. */
const instance = (store: StoreLayer) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const context = yield* Layer.build(
      UserTokens.layer({
        client: {
          issuer: provider.issuer,
          clientId: IdentityProvider.Clients.web.clientId,
          clientSecret: Redacted.make(IdentityProvider.Clients.web.clientSecret)
        },
        resource: IdentityProvider.Resources.demoApi
      }).pipe(Layer.provideMerge(store), Layer.provide(TokenEndpoint.layer()), Layer.orDie)
    )
    return {
      tokens: Context.get(context, UserTokens.UserTokens),
      events: Context.get(context, OidcEvents.OidcEvents),
      bus: Context.get(context, ClusterEvents.ClusterEvents)
    }
  })

type Instance = Effect.Effect.Success<ReturnType<typeof instance>>

/** Signs a user in through the provider and seeds the instance's store. */
const signedIn = (on: Instance, account: string, sessionId: string) =>
  Effect.map(
    signIn(account, { sessionId, resources: [IdentityProvider.Resources.demoApi] }).pipe(
      Effect.provideService(OidcEvents.OidcEvents, on.events)
    ),
    ({ user }) => user
  )

// P12

const rounds = 12
const batch = 5_000

const p12 = Effect.gen(function*() {
  const variants = {
    memory: yield* instance(memory),
    redisNear: yield* instance(redis(true)),
    pgNear: yield* instance(pg(true)),
    redis: yield* instance(redis(false)),
    pg: yield* instance(pg(false))
  }
  const users = new Map<string, CurrentUser.User>()
  for (const [name, on] of Object.entries(variants)) {
    users.set(name, yield* signedIn(on, `bench-p12-${name}`, `p12-${name}`))
  }

  const nanosPerGet: Record<string, Array<number>> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]))
  const loop = (name: keyof typeof variants, n: number) =>
    Effect.gen(function*() {
      const get = variants[name].tokens.get()
      for (let i = 0; i < n; i++) yield* get
    }).pipe(CurrentUser.provide(users.get(name)!))
  // warm-up, then interleaved rounds: the machine is shared, neighbours' load falls on every variant alike
  for (const name of Object.keys(variants) as Array<keyof typeof variants>) yield* loop(name, 500)
  const names = Object.keys(variants) as Array<keyof typeof variants>
  for (let round = 0; round < rounds; round++) {
    // each round starts with another variant: none always follows the same neighbour (and its garbage)
    for (const name of [...names.slice(round % names.length), ...names.slice(0, round % names.length)]) {
      // without a near cache each get is a round trip: fewer of them, or the run takes minutes
      const n = name === "redis" || name === "pg" ? batch / 25 : batch
      const start = now()
      yield* loop(name, n)
      nanosPerGet[name]!.push(((now() - start) * 1e6) / n)
    }
  }
  const ns = Object.fromEntries(Object.entries(nanosPerGet).map(([k, v]) => [k, median(v)]))
  const row = (store: "redis" | "pg", label: string): Row => {
    const near = ns[`${store}Near`]!
    const ratio = near / ns.memory!
    return {
      id: "P12",
      what: `user token get, near cache over ${label}`,
      value: `${fmt(near / 1000)} µs/get`,
      baseline: `memory store ${fmt(ns.memory! / 1000)} µs/get`,
      ratio,
      goal: "≤ 1.5",
      met: ratio <= 1.5,
      data: {
        nanosPerGet: near,
        memoryNanosPerGet: ns.memory,
        withoutNearCacheNanosPerGet: ns[store],
        rounds,
        getsPerRound: batch,
        roundsNanos: { near: nanosPerGet[`${store}Near`], memory: nanosPerGet.memory, without: nanosPerGet[store] }
      }
    }
  }
  return [row("redis", "Redis"), row("pg", "PostgreSQL")]
})

// P13

const signOuts = 20

const p13 = (label: string, store: () => StoreLayer) =>
  Effect.gen(function*() {
    const a = yield* instance(store())
    const b = yield* instance(store())
    const fromCall: Array<number> = []
    const fromClear: Array<number> = []
    for (let i = 0; i < signOuts; i++) {
      const user = yield* signedIn(a, `bench-p13-${i}`, `p13-${label}-${i}`)
      const get = b.tokens.getFor(user)
      // B uses the token (its near cache holds it), until it is refused
      yield* get
      const seenByA = yield* a.bus.subscribe
      const stopped = yield* Effect.gen(function*() {
        while (true) {
          if (Either.isLeft(yield* Effect.either(get))) return now()
          yield* Effect.sleep("1 millis")
        }
      }).pipe(Effect.fork)
      const called = now()
      yield* a.events.signingOut(user)
      // A's own delivery of its TokensChanged: published right after the clear
      let cleared = called
      while (true) {
        const delivery = yield* Queue.take(seenByA)
        if (delivery.event._tag === "TokensChanged" && delivery.local) {
          cleared = now()
          break
        }
      }
      const at = yield* stopped.await.pipe(Effect.flatten)
      fromCall.push(at - called)
      fromClear.push(at - cleared)
      yield* Queue.shutdown(seenByA)
    }
    const m = median(fromCall)
    return {
      id: "P13",
      what: `sign-out on A → B stops using the token (${label})`,
      value: `${fmt(m)} ms median from the sign-out call`,
      baseline: `${fmt(median(fromClear))} ms from A's clear and publish`,
      goal: "median ≤ 100 ms",
      met: m <= 100,
      data: {
        signOuts,
        medianFromCallMillis: m,
        p95FromCallMillis: percentile(fromCall, 95),
        medianFromClearMillis: median(fromClear),
        p95FromClearMillis: percentile(fromClear, 95),
        fromCallMillis: fromCall,
        fromClearMillis: fromClear,
        pollEveryMillis: 1
      }
    } satisfies Row
  })

export const run: Effect.Effect<
  ReadonlyArray<Row>,
  unknown,
  IdentityProvider.IdentityProvider | HttpClient.HttpClient
> = Effect.gen(function*() {
  const rows = yield* p12
  rows.push(yield* p13("Redis", () => redis(true)))
  rows.push(yield* p13("PostgreSQL", () => pg(true)))
  return rows
}).pipe(
  Effect.provide(Layer.merge(deleteRedisKeysAfter(redisPrefix), dropPgTablesAfter(pgPrefix))),
  Effect.scoped
)
