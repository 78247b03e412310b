import { AccessTokenManagement, ClientCredentialsTokens, TokenEndpoint, TokenError, UserTokens } from "@effect-atm/core"
import * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"

// building a manager never calls the endpoint: a stub is enough to check the options
const endpoint = Layer.succeed(TokenEndpoint.TokenEndpoint, {} as TokenEndpoint.TokenEndpoint["Type"])
const client = { tokenEndpoint: "http://127.0.0.1:1/token", clientId: "worker", clientSecret: Redacted.make("s") }

const clientCredentials = (options: Partial<ClientCredentialsTokens.Options>) =>
  ClientCredentialsTokens.layerMemory({ clients: { worker: client }, ...options }).pipe(Layer.provide(endpoint))
const userTokens = (options: Partial<UserTokens.Options>) =>
  UserTokens.layerMemory({ client, ...options }).pipe(Layer.provide(endpoint))

/** Builds the layer and returns the typed failure: never a defect, never a success. */
const buildFailure = <A, E>(layer: Layer.Layer<A, E>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(Effect.scoped(Layer.build(layer)))
    assert.isTrue(Exit.isFailure(exit), "the layer must not build")
    if (Exit.isSuccess(exit)) throw new Error("unreachable")
    assert.isFalse(Cause.isDie(exit.cause), "a typed failure, not a defect")
    const failure = Cause.failureOption(exit.cause)
    if (failure._tag === "None") throw new Error("no typed failure")
    return failure.value
  })

/** `buildFailure` that must be an `InvalidClientConfiguration`. */
const configurationFailure = <A, E extends { readonly _tag: string }>(layer: Layer.Layer<A, E>) =>
  Effect.map(buildFailure(layer), (error) => {
    if (!TokenError.isInvalidClientConfiguration(error)) {
      throw new Error(`expected InvalidClientConfiguration, got ${error._tag}`)
    }
    return error
  })

const invalid: ReadonlyArray<readonly [string, unknown]> = [
  ["negative", -60_000],
  ["NaN", Number.NaN],
  ["infinite", Number.POSITIVE_INFINITY],
  ["unparseable", "soon"],
  ["a negative string", "-5 seconds"],
  ["a negative bigint", -1n],
  ["not a duration", { seconds: 5 }]
]

describe("strict options", () => {
  for (const [what, renewBefore] of invalid) {
    it.effect(`renewBefore that is ${what} fails the client-credentials layer naming the field`, () =>
      Effect.gen(function*() {
        const error = yield* configurationFailure(clientCredentials({ renewBefore: renewBefore as never }))
        assert.strictEqual(error._tag, "InvalidClientConfiguration")
        assert.strictEqual(error.field, "renewBefore")
        assert.include(error.message, "non-negative, finite duration")
      }))

    it.effect(`renewBefore that is ${what} fails the user-token layer naming the field`, () =>
      Effect.gen(function*() {
        const error = yield* configurationFailure(userTokens({ renewBefore: renewBefore as never }))
        assert.strictEqual(error._tag, "InvalidClientConfiguration")
        assert.strictEqual(error.field, "renewBefore")
      }))

    it.effect(`refreshAnswerTimeout that is ${what} fails the user-token layer naming the field`, () =>
      Effect.gen(function*() {
        const error = yield* configurationFailure(userTokens({ refreshAnswerTimeout: renewBefore as never }))
        assert.strictEqual(error._tag, "InvalidClientConfiguration")
        assert.strictEqual(error.field, "refreshAnswerTimeout")
        assert.include(error.message, "non-negative, finite duration")
      }))
  }

  const backoffs: ReadonlyArray<readonly [string, unknown, string]> = [
    ["a negative initial window", { initial: -1 }, "backoff.initial"],
    ["a zero initial window", { initial: 0 }, "backoff.initial"],
    ["an unparseable max", { max: "a while" }, "backoff.max"],
    ["a max shorter than initial", { initial: "10 seconds", max: "1 second" }, "backoff.max"],
    ["jitter above 1", { jitter: 2 }, "backoff.jitter"],
    ["NaN jitter", { jitter: Number.NaN }, "backoff.jitter"],
    ["not an object", "fast", "backoff"]
  ]
  for (const [what, backoff, field] of backoffs) {
    it.effect(`backoff with ${what} fails the layer naming ${field}`, () =>
      Effect.gen(function*() {
        const error = yield* configurationFailure(clientCredentials({ backoff: backoff as never }))
        assert.strictEqual(error._tag, "InvalidClientConfiguration")
        assert.strictEqual(error.field, field)
        const userError = yield* configurationFailure(userTokens({ backoff: backoff as never }))
        assert.strictEqual(userError.field, field)
      }))
  }

  const endpoints: ReadonlyArray<readonly [string, TokenEndpoint.Options, string]> = [
    ["an unparseable timeout", { timeout: "soon" as never }, "endpoint.timeout"],
    ["a negative timeout", { timeout: -1 }, "endpoint.timeout"],
    ["a zero timeout", { timeout: 0 }, "endpoint.timeout"],
    ["a NaN default lifetime", { defaultLifetime: Number.NaN }, "endpoint.defaultLifetime"],
    ["a negative metadata time to live", { metadataTimeToLive: "-1 hours" }, "endpoint.metadataTimeToLive"],
    ["a negative response bound", { maxResponseBytes: -5 }, "endpoint.maxResponseBytes"]
  ]
  const unusedHttp = Layer.succeed(HttpClient.HttpClient, HttpClient.make(() => Effect.die("no request expected")))
  for (const [what, endpointOptions, field] of endpoints) {
    it.effect(`an endpoint with ${what} fails the managers' layer naming ${field}`, () =>
      Effect.gen(function*() {
        const error = yield* buildFailure(
          AccessTokenManagement.layerClientCredentialsMemory({ clients: { worker: client }, endpoint: endpointOptions })
            .pipe(Layer.provide(unusedHttp))
        )
        assert.strictEqual(error._tag, "InvalidClientConfiguration")
        if (error._tag === "InvalidClientConfiguration") assert.strictEqual(error.field, field)
      }))
  }

  for (
    const [what, store, field] of [
      ["an unparseable time to live", { timeToLive: "soon" }, "store.timeToLive"],
      ["a negative time to live", { timeToLive: -1 }, "store.timeToLive"],
      ["a fractional capacity", { capacity: 1.5 }, "store.capacity"]
    ] as const
  ) {
    it.effect(`a memory store with ${what} fails UserTokens.layerMemory naming ${field}`, () =>
      Effect.gen(function*() {
        const error = yield* configurationFailure(userTokens({ store: store as never } as Partial<UserTokens.Options>))
        assert.strictEqual(error.field, field)
      }))
  }

  it.effect("a discovery that is neither eager nor lazy fails both managers' layers naming the field", () =>
    Effect.gen(function*() {
      const error = yield* configurationFailure(clientCredentials({ discovery: "early" as never }))
      assert.strictEqual(error.field, "discovery")
      assert.include(error.message, `"eager" or "lazy"`)
      const userError = yield* configurationFailure(userTokens({ discovery: "sometimes" as never }))
      assert.strictEqual(userError.field, "discovery")
    }))

  it.effect("a keepIdToken that is not a boolean (\"false\" from an untyped source) fails the user-token layer", () =>
    Effect.gen(function*() {
      const error = yield* configurationFailure(userTokens({ keepIdToken: "false" as never }))
      assert.strictEqual(error.field, "keepIdToken")
      assert.include(error.message, "true or false")
    }))

  it.effect("valid durations in every form are accepted", () =>
    Effect.gen(function*() {
      for (const renewBefore of [0, 30_000, "30 seconds", "1.5 minutes", [30, 0], 30_000_000_000n]) {
        yield* Effect.scoped(Layer.build(clientCredentials({ renewBefore: renewBefore as never })))
      }
      yield* Effect.scoped(Layer.build(clientCredentials({ backoff: false })))
      yield* Effect.scoped(
        Layer.build(userTokens({ backoff: { initial: "500 millis", max: "1 minute", jitter: 0 } }))
      )
    }))
})
