/**
 * Sign-out everywhere: two instances of the login share a session store and a bus on the real Redis (this run's
 * own channel). A connection runs on B; the session ends on A (sign-out, expiry): B's connection closes when the
 * event arrives — the session check of the connections is set to an hour, so only the bus can end it in time.
 */
import * as ClusterEvents from "@effect-atm/core/ClusterEvents"
import * as Session from "@effect-atm/core/Session"
import * as SessionStore from "@effect-atm/core/SessionStore"
import * as TokenEndpoint from "@effect-atm/core/TokenEndpoint"
import * as UserTokens from "@effect-atm/core/UserTokens"
import * as OidcLogin from "@effect-atm/oidc-login/OidcLogin"
import * as RedisClusterEvents from "@effect-atm/store-redis/RedisClusterEvents"
import * as RedisConnection from "@effect-atm/store-redis/RedisConnection"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { redisUrl, runId } from "../../../test/support/stores.js"

const prefix = `test:${runId()}:signout:`
const client = { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("web-secret") }

/** One instance: its own token manager (no provider: nothing is stored to revoke), login and bus connection. */
const instance = (sessions: SessionStore.SessionStore["Type"], options?: OidcLogin.SessionOptions) =>
  Effect.map(
    Layer.build(
      OidcLogin.layer({
        client,
        baseUrl: "http://127.0.0.1:1",
        session: {
          secret: Redacted.make("0123456789abcdef0123456789abcdef"),
          connectionCheckInterval: "1 hour",
          ...options
        }
      }).pipe(
        Layer.provide([
          UserTokens.layerMemory({ client, discovery: "lazy" }),
          Layer.succeed(SessionStore.SessionStore, sessions),
          RedisClusterEvents.layer({ prefix }).pipe(Layer.provide(RedisConnection.layer({ url: redisUrl })))
        ]),
        Layer.provide(TokenEndpoint.layer()),
        Layer.provide(FetchHttpClient.layer),
        Layer.orDie
      )
    ),
    (context) => Context.get(context, OidcLogin.OidcLogin)
  )

const newSession = (id: string, now: number, lifetime = 3_600_000) =>
  new Session.Session({
    id,
    subject: "alice",
    claims: { sid: "provider-session" },
    createdAt: now,
    lastSeenAt: now,
    idleExpiresAt: now + lifetime,
    absoluteExpiresAt: now + lifetime
  })

/** Runs a connection of the session on the instance until the session ends it; `started` once it runs. */
const connect = (login: OidcLogin.OidcLogin["Type"], session: Session.Session) =>
  Effect.gen(function*() {
    const started = yield* Deferred.make<void>()
    const fiber = yield* login.runConnection(
      session,
      Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
    )
      .pipe(Effect.fork)
    yield* Deferred.await(started)
    return fiber
  })

describe("sign-out everywhere", () => {
  it.live("a session ended on A closes its connection on B", () =>
    Effect.gen(function*() {
      const sessions = SessionStore.makeMemory()
      const a = yield* instance(sessions)
      const b = yield* instance(sessions)
      const session = newSession(`s-${runId()}`, Date.now())
      yield* sessions.set(session)
      const onB = yield* connect(b, session)
      const other = yield* connect(b, newSession(`other-${runId()}`, Date.now()))
      assert.strictEqual(yield* b.connections, 2)

      yield* a.endSession(session.id)
      yield* Fiber.join(onB).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "not closed" }))
      assert.strictEqual(yield* b.connections, 1, "the other session's connection goes on")
      assert.isTrue(Option.isNone(yield* sessions.get(session.id)))
      yield* Fiber.interrupt(other)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("an expired session, ended by A's sweep, closes its connection on B", () =>
    Effect.gen(function*() {
      const sessions = SessionStore.makeMemory()
      // only A sweeps (B's sweep would find nothing anyway: the session is taken once)
      const a = yield* instance(sessions, { sweepInterval: "100 millis" })
      const b = yield* instance(sessions, { sweepInterval: "1 hour" })
      void a
      const session = newSession(`exp-${runId()}`, Date.now(), 1_500)
      yield* sessions.set(session)
      const onB = yield* connect(b, session)
      yield* Fiber.join(onB).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "not closed" }))
      assert.strictEqual(yield* b.connections, 0)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live(
    "a connection whose session ended while the bus was away closes when the subscription is back",
    () =>
      Effect.gen(function*() {
        const sessions = SessionStore.makeMemory()
        let resubscribed = () => {}
        const events = yield* ClusterEvents.make({
          name: "test",
          distributed: true,
          publish: () => Effect.void,
          subscribe: (handlers) => Effect.sync(() => void (resubscribed = handlers.onResubscribed))
        })
        const login = yield* Layer.build(
          OidcLogin.layer({
            client,
            baseUrl: "http://127.0.0.1:1",
            session: { secret: Redacted.make("0123456789abcdef0123456789abcdef"), connectionCheckInterval: "1 hour" }
          }).pipe(
            Layer.provide([
              UserTokens.layerMemory({ client, discovery: "lazy" }),
              Layer.succeed(SessionStore.SessionStore, sessions),
              Layer.succeed(ClusterEvents.ClusterEvents, events)
            ]),
            Layer.provide(TokenEndpoint.layer()),
            Layer.provide(FetchHttpClient.layer),
            Layer.orDie
          )
        ).pipe(Effect.map(Context.get(OidcLogin.OidcLogin)))
        const session = newSession(`gap-${runId()}`, Date.now())
        yield* sessions.set(session)
        const connection = yield* connect(login, session)
        // ended elsewhere; the event was lost
        yield* sessions.remove(session.id)
        resubscribed()
        yield* Fiber.join(connection).pipe(
          Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "not closed" })
        )
      }).pipe(Effect.scoped),
    { timeout: 30_000 }
  )
})
