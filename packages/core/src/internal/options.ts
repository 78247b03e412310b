import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { Backoff } from "../TokenCache.js"
import { InvalidClientConfiguration } from "../TokenError.js"

const durationPattern = /^(\d+(?:\.\d+)?)\s*(nanos?|micros?|millis?|seconds?|minutes?|hours?|days?|weeks?)$/

const shown = (input: unknown): string => {
  const text = typeof input === "string" ? JSON.stringify(input) : String(input)
  return text.length > 40 ? `${text.slice(0, 40)}…` : text
}

/**
 * A duration given in code or configuration, strictly: a `Duration`, a non-negative finite number of milliseconds,
 * a non-negative bigint of nanoseconds, a `[seconds, nanos]` pair, or a string such as "30 seconds". Effect's own
 * decoding turns a negative or NaN number into zero and throws on "soon": neither is accepted here.
 *
 * @internal
 */
export const decodeDuration = (input: unknown): Either.Either<Duration.Duration, string> => {
  const reason = `must be a non-negative, finite duration such as "30 seconds" or 30000 (milliseconds), ` +
    `got ${shown(input)}`
  if (Duration.isDuration(input)) return Duration.isFinite(input) ? Either.right(input) : Either.left(reason)
  if (typeof input === "number") {
    return Number.isFinite(input) && input >= 0 ? Either.right(Duration.millis(input)) : Either.left(reason)
  }
  if (typeof input === "bigint") return input >= 0n ? Either.right(Duration.nanos(input)) : Either.left(reason)
  if (typeof input === "string") {
    const match = durationPattern.exec(input.trim())
    if (match === null) return Either.left(reason)
    const decoded = Duration.decodeUnknown(`${match[1]} ${match[2]}`)
    return decoded._tag === "Some" && Duration.isFinite(decoded.value)
      ? Either.right(decoded.value)
      : Either.left(reason)
  }
  if (
    Array.isArray(input) && input.length === 2 &&
    input.every((part) => typeof part === "number" && Number.isFinite(part) && part >= 0)
  ) {
    return Either.right(Duration.decode(input as [number, number]))
  }
  return Either.left(reason)
}

/** `decodeDuration` failing with an error that names the owner and the field. @internal */
export const duration = (
  owner: string,
  field: string,
  input: unknown,
  fallback: Duration.DurationInput
): Effect.Effect<Duration.Duration, InvalidClientConfiguration> =>
  Effect.suspend(() => {
    const decoded = decodeDuration(input ?? fallback)
    return Either.isRight(decoded)
      ? Effect.succeed(decoded.right)
      : Effect.fail(new InvalidClientConfiguration({ client: owner, field, reason: decoded.left }))
  })

/** Validates backoff settings; the defaults stay those of the token cache. @internal */
export const backoff = (
  owner: string,
  input: Backoff | false | undefined
): Effect.Effect<Backoff | false | undefined, InvalidClientConfiguration> =>
  Effect.gen(function*() {
    if (input === undefined || input === false) return input
    if (typeof input !== "object" || input === null) {
      return yield* new InvalidClientConfiguration({
        client: owner,
        field: "backoff",
        reason: "must be false or an object with initial, max and jitter"
      })
    }
    const initial = input.initial === undefined
      ? undefined
      : yield* duration(owner, "backoff.initial", input.initial, 0)
    const max = input.max === undefined ? undefined : yield* duration(owner, "backoff.max", input.max, 0)
    if (initial !== undefined && Duration.toMillis(initial) <= 0) {
      return yield* new InvalidClientConfiguration({
        client: owner,
        field: "backoff.initial",
        reason: "must be longer than zero (use backoff: false to turn backoff off)"
      })
    }
    if (initial !== undefined && max !== undefined && Duration.lessThan(max, initial)) {
      return yield* new InvalidClientConfiguration({
        client: owner,
        field: "backoff.max",
        reason: "must not be shorter than backoff.initial"
      })
    }
    const jitter: unknown = input.jitter
    if (jitter !== undefined && !(typeof jitter === "number" && jitter >= 0 && jitter <= 1)) {
      return yield* new InvalidClientConfiguration({
        client: owner,
        field: "backoff.jitter",
        reason: `must be a number from 0 (no jitter) to 1, got ${shown(jitter)}`
      })
    }
    return {
      ...(initial === undefined ? {} : { initial }),
      ...(max === undefined ? {} : { max }),
      ...(jitter === undefined ? {} : { jitter })
    }
  })

const positive = (owner: string, field: string, input: unknown, fallback: Duration.DurationInput) =>
  Effect.flatMap(duration(owner, field, input, fallback), (value) =>
    Duration.toMillis(value) > 0
      ? Effect.succeed(value)
      : Effect.fail(new InvalidClientConfiguration({ client: owner, field, reason: "must be longer than zero" })))

/** An optional count (bytes, users): absent, or a positive whole number. */
const positiveCount = (owner: string, field: string, input: unknown, unit: string) =>
  input === undefined || (typeof input === "number" && Number.isSafeInteger(input) && input > 0)
    ? Effect.void
    : Effect.fail(
      new InvalidClientConfiguration({
        client: owner,
        field,
        reason: `must be a positive whole number of ${unit}, got ${shown(input)}`
      })
    )

/** Validates the token endpoint's options (see `TokenEndpoint.Options`). @internal */
export const endpoint = (
  owner: string,
  input: {
    readonly timeout?: Duration.DurationInput | undefined
    readonly defaultLifetime?: Duration.DurationInput | undefined
    readonly metadataTimeToLive?: Duration.DurationInput | undefined
    readonly maxResponseBytes?: number | undefined
  } | undefined
): Effect.Effect<void, InvalidClientConfiguration> =>
  Effect.gen(function*() {
    if (input === undefined) return
    yield* positive(owner, "endpoint.timeout", input.timeout, 1)
    yield* positive(owner, "endpoint.defaultLifetime", input.defaultLifetime, 1)
    yield* duration(owner, "endpoint.metadataTimeToLive", input.metadataTimeToLive, 0)
    yield* positiveCount(owner, "endpoint.maxResponseBytes", input.maxResponseBytes, "bytes")
  })

/** Validates the in-memory user token store's options (see `UserTokenStore.MemoryOptions`). @internal */
export const memoryStore = (
  owner: string,
  input:
    | { readonly capacity?: number | undefined; readonly timeToLive?: Duration.DurationInput | undefined }
    | undefined
): Effect.Effect<void, InvalidClientConfiguration> =>
  Effect.gen(function*() {
    if (input === undefined) return
    if (input.timeToLive !== undefined) yield* positive(owner, "store.timeToLive", input.timeToLive, 1)
    yield* positiveCount(owner, "store.capacity", input.capacity, "users")
  })

/** Validates when clients are discovered (see `TokenEndpoint.Discovery`). @internal */
export const discovery = (owner: string, input: unknown): Effect.Effect<void, InvalidClientConfiguration> =>
  input === undefined || input === "eager" || input === "lazy"
    ? Effect.void
    : Effect.fail(
      new InvalidClientConfiguration({
        client: owner,
        field: "discovery",
        reason: `must be "eager" or "lazy", got ${shown(input)}`
      })
    )

/** Validates an optional boolean option (a string such as `"false"` from an untyped source is refused). @internal */
export const flag = (
  owner: string,
  field: string,
  input: unknown,
  fallback: boolean
): Effect.Effect<boolean, InvalidClientConfiguration> =>
  input === undefined
    ? Effect.succeed(fallback)
    : typeof input === "boolean"
    ? Effect.succeed(input)
    : Effect.fail(
      new InvalidClientConfiguration({ client: owner, field, reason: `must be true or false, got ${shown(input)}` })
    )

/**
 * An optional value read from `Config` as an optional property to spread: `{ key: value }` when present, `{}`
 * otherwise, so that an absent value leaves the property absent rather than `undefined` (exactOptionalPropertyTypes).
 *
 * @internal
 */
export const present = <K extends string, A>(key: K, value: Option.Option<A>): { readonly [P in K]?: A } =>
  (Option.isSome(value) ? { [key]: value.value } : {}) as { readonly [P in K]?: A }
