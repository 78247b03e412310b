import {
  AccessTokenManagement,
  AccessTokenStore,
  ClientCredentialsTokens,
  TokenClient,
  TokenEndpoint,
  TokenError,
  TokenLock,
  UserTokens,
  UserTokenStore
} from "@effect-atm/core"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { captureLogs } from "../../../test/support/redaction.js"

const client = { issuer: "https://login.example.com", clientId: "web", clientSecret: Redacted.make("web-secret") }

/** A lock that says it spans processes (it excludes nothing: these tests never renew). */
const distributedLock = Layer.succeed(TokenLock.TokenLock, { distributed: true, withLock: () => identity })
const sharedUserStore = Layer.sync(UserTokenStore.UserTokenStore, () => ({
  ...UserTokenStore.makeMemory(),
  distributed: true
}))
const sharedAccessTokenStore = Layer.sync(AccessTokenStore.AccessTokenStore, () => ({
  ...AccessTokenStore.makeMemory(),
  distributed: true
}))

// these layers are built, never used: no provider to discover
const lazy = { discovery: "lazy" } as const

const warningsWhileBuilding = <A, E>(layer: Layer.Layer<A, E, HttpClient.HttpClient>) =>
  captureLogs(Effect.scoped(Layer.build(Layer.provide(layer, FetchHttpClient.layer)))).pipe(
    Effect.map(({ exit, lines }) => {
      assert.isTrue(Exit.isSuccess(exit), "the layer builds")
      return lines.filter((line) => line.includes("level=WARN") && line.includes("TokenLock"))
    })
  )

describe("AccessTokenManagement", () => {
  it.effect("a store shared by several processes with a process-local lock warns once per manager at start-up", () =>
    Effect.gen(function*() {
      const local = yield* warningsWhileBuilding(
        AccessTokenManagement.layerServer({ client, ...lazy }).pipe(
          Layer.provide([sharedUserStore, sharedAccessTokenStore, TokenLock.layerMemory])
        )
      )
      assert.strictEqual(local.length, 2, "UserTokens and ClientCredentialsTokens each warn")
      assert.include(local[0], "RedisTokenLock")

      const distributed = yield* warningsWhileBuilding(
        AccessTokenManagement.layerServer({ client, ...lazy }).pipe(
          Layer.provide([sharedUserStore, sharedAccessTokenStore, distributedLock])
        )
      )
      assert.deepStrictEqual(distributed, [], "a distributed lock: no warning")

      const memory = yield* warningsWhileBuilding(AccessTokenManagement.layerServerMemory({ client, ...lazy }))
      assert.deepStrictEqual(memory, [], "memory stores in one process: no warning")
    }))

  it.effect("an invalid OpenID Connect client fails layerServer once, named as written", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(
        AccessTokenManagement.layerServerMemory({ client: { issuer: "https://login.example.com", clientId: "web" } })
          .pipe(Layer.provide(FetchHttpClient.layer))
      )))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const failures = Chunk.toReadonlyArray(Cause.failures(exit.cause))
        assert.strictEqual(failures.length, 1, "one error, not one per layer that reads the client")
        const error = failures[0]!
        assert.isTrue(TokenError.isInvalidClientConfiguration(error))
        if (TokenError.isInvalidClientConfiguration(error)) {
          assert.strictEqual(error.client, "client")
          assert.strictEqual(error.field, "clientSecret")
          assert.notInclude(error.message, "openid-connect")
        }
      }
    }))

  it.effect("the stores are taken from the context: an AccessTokenStore provided outside is the one used", () =>
    Effect.gen(function*() {
      const removed: Array<string> = []
      const recording = Layer.sync(AccessTokenStore.AccessTokenStore, () => {
        const memory = AccessTokenStore.makeMemory()
        return {
          ...memory,
          remove: (key, ifToken) => Effect.zipRight(Effect.sync(() => removed.push(key)), memory.remove(key, ifToken))
        }
      })
      yield* Effect.flatMap(ClientCredentialsTokens.ClientCredentialsTokens, (tokens) => tokens.invalidate("api")).pipe(
        Effect.provide(
          ClientCredentialsTokens.layer({ clients: { api: client }, ...lazy }).pipe(
            Layer.provide([recording, TokenEndpoint.layerDefault, TokenLock.layerMemory]),
            Layer.provide(FetchHttpClient.layer)
          )
        )
      )
      assert.strictEqual(removed.length, 1, "the manager cleared the token in the store it was given")
      assert.isTrue(removed[0]!.startsWith("api"))
    }))
})

describe("TokenClient.config", () => {
  const read = (env: Record<string, string>) =>
    Effect.withConfigProvider(TokenClient.config, ConfigProvider.fromJson(env))

  it.effect("reads a typed client input; an unknown authentication method names the variable", () =>
    Effect.gen(function*() {
      const input = yield* read({
        ISSUER: "https://login.example.com",
        CLIENT_ID: "worker",
        CLIENT_SECRET: "s3cret",
        AUTHENTICATION: "client_secret_post"
      })
      assert.strictEqual(input.clientId, "worker")
      assert.strictEqual(input.authentication, "client_secret_post")
      assert.strictEqual(Redacted.value(input.clientSecret!), "s3cret")
      assert.isFalse("tokenEndpoint" in input, "absent variables leave the field out")
      const error = yield* Effect.flip(read({ CLIENT_ID: "worker", AUTHENTICATION: "kerberos" }))
      assert.include(String(error), "AUTHENTICATION")
    }))
})

describe("TokenError", () => {
  it("guards recognise the errors, and isTransient says which a retry may overcome", () => {
    const unavailable = new TokenError.TokenEndpointUnavailable({
      operation: "client_credentials",
      clientId: "c",
      endpoint: "https://login.example.com/token",
      reason: "connection refused"
    })
    const rejected = (error: string) =>
      new TokenError.TokenRequestRejected({
        operation: "refresh_token",
        clientId: "c",
        endpoint: "https://login.example.com/token",
        status: 400,
        error
      })
    const storeDown = new TokenError.TokenStoreError({ store: "redis", operation: "get", reason: "timeout" })
    const storeCorrupt = new TokenError.TokenStoreError({
      store: "redis",
      operation: "get",
      reason: "unreadable",
      transient: false
    })
    const signIn = new TokenError.SignInRequired({ subject: "alice", reason: "refresh-token-rejected" })

    assert.isTrue(TokenError.isTokenError(unavailable))
    assert.isFalse(TokenError.isTokenError(new Error("x")))
    assert.isFalse(TokenError.isTokenError({ _tag: "SignInRequired" }), "a look-alike is not one")
    assert.isTrue(TokenError.isSignInRequired(signIn))
    assert.isFalse(TokenError.isSignInRequired(unavailable))

    assert.isTrue(TokenError.isTransient(unavailable))
    assert.isTrue(TokenError.isTransient(rejected("temporarily_unavailable")))
    assert.isFalse(TokenError.isTransient(rejected("invalid_grant")))
    assert.isTrue(TokenError.isTransient(storeDown))
    assert.isFalse(TokenError.isTransient(storeCorrupt))
    assert.isFalse(TokenError.isTransient(signIn))
    assert.include(storeDown.message, "read a token")
    assert.include(storeCorrupt.message, "Retrying will not help")
  })

  it.effect("UserTokens.layerMemory needs nothing but the endpoint", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Effect.scoped(Layer.build(
        UserTokens.layerMemory({ client, ...lazy }).pipe(
          Layer.provide(TokenEndpoint.layerDefault),
          Layer.provide(FetchHttpClient.layer)
        )
      )))
      assert.isTrue(Exit.isSuccess(exit))
    }))
})
