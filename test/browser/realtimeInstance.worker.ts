/**
 * One instance of the realtime example's cluster (`Cluster.instance`) in a process of its own, run by `tsx`: a test
 * can kill it for real (SIGKILL: no finalizer runs, its renewal lease is not released, its connections drop). It
 * says `{ ready: pid, port }` once it serves, and exits when told `"exit"`.
 *
 * Environment: REALTIME_INSTANCE, the instance's name and `Cluster.Shared` as JSON (secrets included: a test's).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Cluster from "../../examples/realtime/src/Cluster.js"

const settings = JSON.parse(process.env.REALTIME_INSTANCE!) as {
  readonly name: string
  readonly url: string
  readonly redisUrl: string
  readonly prefix: string
  readonly secret: string
  readonly key: string
  readonly intervalMillis: number
  readonly issuer: string
  readonly demoApiUrl: string
  readonly tokenRequestTimeoutMillis?: number
  readonly dpop?: boolean
  /** with private_key_jwt: the provider's `clientPrivateKeys.pem` */
  readonly clientPrivateKey?: string
}

process.on("message", (message) => {
  if (message === "exit") process.exit(0)
})

Effect.runFork(
  Effect.scoped(Effect.gen(function*() {
    const { port } = yield* Cluster.instance(settings.name, {
      ...settings,
      secret: Redacted.make(settings.secret),
      key: Redacted.make(settings.key),
      interval: Duration.millis(settings.intervalMillis),
      clientPrivateKey: settings.clientPrivateKey === undefined ? undefined : Redacted.make(settings.clientPrivateKey),
      tokenRequestTimeout: settings.tokenRequestTimeoutMillis === undefined
        ? undefined
        : Duration.millis(settings.tokenRequestTimeoutMillis)
    })
    process.send!({ ready: process.pid, port })
    return yield* Effect.never
  })).pipe(
    Effect.tapErrorCause((cause) => Effect.sync(() => console.error(`instance ${settings.name} failed`, cause))),
    Effect.ensuring(Effect.sync(() => process.exit(1)))
  )
)
