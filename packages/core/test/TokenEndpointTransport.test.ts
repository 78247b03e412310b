/**
 * The token endpoint over a test transport: an `HttpClient` that answers as providers other than oidc-provider do
 * (issuers with a path, lowercase `bearer`, slow answers, endless bodies, Basic credentials read verbatim).
 */
import {
  AccessTokenManagement,
  ClientCredentialsTokens,
  CurrentUser,
  OidcEvents,
  TokenEndpoint,
  TokenError,
  TokenLock,
  UserTokens,
  UserTokenStore
} from "@effect-atm/core"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"

const ISSUER = "http://idp.test/realms/x"
const TOKEN_ENDPOINT = `${ISSUER}/protocol/openid-connect/token`

interface Seen {
  readonly url: string
  readonly method: string
  readonly authorization: string | undefined
  readonly form: URLSearchParams
}

const formOf = (request: HttpClientRequest.HttpClientRequest): URLSearchParams =>
  new URLSearchParams(request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : "")

/** An HttpClient that records every request and answers with `answer`. */
const transport = (answer: (seen: Seen) => Effect.Effect<Response>) => {
  const seen: Array<Seen> = []
  const layer = Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request, url) => {
      const entry: Seen = {
        url: url.href,
        method: request.method,
        authorization: request.headers["authorization"],
        form: formOf(request)
      }
      seen.push(entry)
      return Effect.map(answer(entry), (response) => HttpClientResponse.fromWeb(request, response))
    })
  )
  return { seen, layer }
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } })

const discoveryDocument = (issuer = ISSUER) => ({
  issuer,
  token_endpoint: TOKEN_ENDPOINT,
  revocation_endpoint: `${ISSUER}/protocol/openid-connect/revoke`
})

/** A provider with a path in its issuer: discovery, client credentials, refresh (with an ID token from `issuer`). */
const pathProvider = (options?: { readonly tokenType?: string; readonly discoveredIssuer?: string }) =>
  transport((seen) => {
    if (seen.url === `${ISSUER}/.well-known/openid-configuration`) {
      return Effect.succeed(json(discoveryDocument(options?.discoveredIssuer)))
    }
    if (seen.url === TOKEN_ENDPOINT) {
      const refresh = seen.form.get("grant_type") === "refresh_token"
      return Effect.succeed(json({
        access_token: `at-${seen.form.get("grant_type")}`,
        token_type: options?.tokenType ?? "Bearer",
        expires_in: 300,
        ...(refresh ? { refresh_token: "rt-2", id_token: idToken(ISSUER) } : {})
      }))
    }
    if (seen.url === `${ISSUER}/protocol/openid-connect/revoke`) {
      return Effect.succeed(new Response("", { status: 200 }))
    }
    return Effect.succeed(new Response("not found", { status: 404 }))
  })

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

/** An unsigned-looking ID token as a token endpoint returns it (its signature is not checked on that channel). */
const idToken = (iss: string) => {
  const now = Math.floor(Date.now() / 1000)
  return `${base64url({ alg: "RS256", typ: "JWT" })}.${
    base64url({ iss, sub: "alice", aud: "web", iat: now, exp: now + 3600 })
  }.c2lnbmF0dXJl`
}

const machine = {
  clientId: "machine",
  clientSecret: Redacted.make("a-b_c:d%e+f"),
  authentication: "client_secret_basic" as const,
  allowInsecureRequests: true
}

const endpointWith = <R>(http: Layer.Layer<HttpClient.HttpClient, never, R>, options?: TokenEndpoint.Options) =>
  TokenEndpoint.TokenEndpoint.pipe(Effect.provide(TokenEndpoint.layer(options).pipe(Layer.provide(http))))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "the effect fails")
  if (Exit.isSuccess(exit)) throw new Error("unreachable")
  return Chunk.unsafeHead(Cause.failures(exit.cause))
}

describe("TokenEndpoint over the application's HttpClient", () => {
  it.effect("discovery, token and revocation requests all go through the given HttpClient", () =>
    Effect.gen(function*() {
      const { layer, seen } = pathProvider()
      const endpoint = yield* endpointWith(layer)
      const client = { ...machine, issuer: ISSUER }
      yield* endpoint.request(client, TokenEndpoint.Grant.ClientCredentials({}))
      yield* endpoint.revoke(client, Redacted.make("rt-1"), "refresh_token")
      assert.deepStrictEqual(seen.map((s) => `${s.method} ${s.url}`), [
        `GET ${ISSUER}/.well-known/openid-configuration`,
        `POST ${TOKEN_ENDPOINT}`,
        `POST ${ISSUER}/protocol/openid-connect/revoke`
      ])
    }))

  it.effect("client_secret_basic form-encodes the credentials (RFC 6749 §2.3.1); _unencoded sends them verbatim", () =>
    Effect.gen(function*() {
      const { layer, seen } = pathProvider()
      const endpoint = yield* endpointWith(layer)
      const client = { ...machine, tokenEndpoint: TOKEN_ENDPOINT }
      yield* endpoint.request(client, TokenEndpoint.Grant.ClientCredentials({}))
      yield* endpoint.request(
        { ...client, authentication: "client_secret_basic_unencoded" },
        TokenEndpoint.Grant.ClientCredentials({})
      )
      const decoded = seen.map((s) => Buffer.from(s.authorization!.replace(/^Basic /, ""), "base64").toString())
      assert.strictEqual(decoded[0], "machine:a%2Db%5Fc%3Ad%25e%2Bf")
      assert.strictEqual(decoded[1], "machine:a-b_c:d%e+f")
    }))

  it.effect("a lowercase token_type \"bearer\" is accepted", () =>
    Effect.gen(function*() {
      const { layer } = pathProvider({ tokenType: "bearer" })
      const endpoint = yield* endpointWith(layer)
      const response = yield* endpoint.request(
        { ...machine, tokenEndpoint: TOKEN_ENDPOINT },
        TokenEndpoint.Grant.ClientCredentials({})
      )
      assert.strictEqual(response.accessToken.tokenType, "Bearer")
    }))

  it.effect("expiry counts from when the request was sent, not from when the answer arrived (TestClock)", () =>
    Effect.gen(function*() {
      const reached = yield* Deferred.make<void>()
      const slow = transport(() =>
        Effect.zipRight(
          Deferred.succeed(reached, void 0),
          Effect.as(Effect.sleep("20 seconds"), json({ access_token: "at", token_type: "Bearer", expires_in: 300 }))
        )
      )
      const endpoint = yield* endpointWith(slow.layer, { timeout: "1 minute" })
      const fiber = yield* Effect.fork(
        endpoint.request({ ...machine, tokenEndpoint: TOKEN_ENDPOINT }, TokenEndpoint.Grant.ClientCredentials({}))
      )
      yield* Deferred.await(reached)
      yield* TestClock.adjust("20 seconds")
      const { accessToken } = yield* Fiber.join(fiber)
      assert.strictEqual(accessToken.issuedAt, 0, "sent at 0")
      assert.strictEqual(accessToken.expiresAt, 300_000, "expires 300 s after sending, not after the 20 s answer")
    }))

  it.effect("interrupting the caller, or the timeout, interrupts the request in the HttpClient", () =>
    Effect.gen(function*() {
      let reached = yield* Deferred.make<void>()
      let interrupted = yield* Deferred.make<void>()
      const hanging = transport(() =>
        Effect.suspend(() =>
          Deferred.succeed(reached, void 0).pipe(
            Effect.zipRight(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, void 0))
          )
        )
      )
      const endpoint = yield* endpointWith(hanging.layer, { timeout: "10 seconds" })
      const request = endpoint.request(
        { ...machine, tokenEndpoint: TOKEN_ENDPOINT },
        TokenEndpoint.Grant.ClientCredentials({})
      )

      const fiber = yield* Effect.fork(request)
      yield* Deferred.await(reached)
      yield* Fiber.interrupt(fiber)
      yield* Deferred.await(interrupted)

      reached = yield* Deferred.make<void>()
      interrupted = yield* Deferred.make<void>()
      const timingOut = yield* Effect.fork(Effect.flip(request))
      yield* Deferred.await(reached)
      yield* TestClock.adjust("10 seconds")
      const error = yield* Fiber.join(timingOut)
      assert.strictEqual(error._tag, "TokenEndpointTimeout")
      yield* Deferred.await(interrupted)
    }))

  it.effect("a body larger than maxResponseBytes is abandoned after the bound: InvalidTokenResponse", () =>
    Effect.gen(function*() {
      let pulled = 0
      const endless = transport(() =>
        Effect.sync(() =>
          new Response(
            new ReadableStream<Uint8Array>({
              pull(controller) {
                pulled += 16_384
                controller.enqueue(new Uint8Array(16_384).fill(0x61))
              }
            }),
            { status: 200, headers: { "content-type": "application/json" } }
          )
        )
      )
      const endpoint = yield* endpointWith(endless.layer, { maxResponseBytes: 100_000 })
      const error = yield* Effect.flip(
        endpoint.request({ ...machine, tokenEndpoint: TOKEN_ENDPOINT }, TokenEndpoint.Grant.ClientCredentials({}))
      )
      assert.strictEqual(error._tag, "InvalidTokenResponse")
      assert.include(error.message, "larger than 100000 bytes")
      assert.isBelow(pulled, 100_000 + 4 * 16_384, "reading stopped at the bound (plus what the stream had queued)")
    }))

  it.effect("a content-encoded body is read up to the bound, whatever length it declares (a client may inflate it)", () =>
    Effect.gen(function*() {
      // as a decoding client hands it over: more bytes than the (compressed) length the provider declared
      const inflated = transport(() =>
        Effect.sync(() =>
          new Response(new Uint8Array(300_000).fill(0x61), {
            status: 200,
            headers: { "content-type": "application/json", "content-encoding": "gzip", "content-length": "2000" }
          })
        )
      )
      const endpoint = yield* endpointWith(inflated.layer, { maxResponseBytes: 100_000 })
      const error = yield* Effect.flip(
        endpoint.request({ ...machine, tokenEndpoint: TOKEN_ENDPOINT }, TokenEndpoint.Grant.ClientCredentials({}))
      )
      assert.strictEqual(error._tag, "InvalidTokenResponse")
      assert.include(error.message, "larger than 100000 bytes")
    }))
})

describe("discovery at start-up", () => {
  const layerWith = (http: Layer.Layer<HttpClient.HttpClient>, discovery?: AccessTokenManagement.Discovery) =>
    AccessTokenManagement.layerClientCredentialsMemory({
      clients: { machine: { ...machine, issuer: ISSUER } },
      ...(discovery === undefined ? {} : { discovery })
    }).pipe(Layer.provide(http))

  it.effect("an issuer with a path is discovered at its path when the layer builds", () =>
    Effect.gen(function*() {
      const { layer, seen } = pathProvider()
      yield* Effect.scoped(Layer.build(layerWith(layer)))
      assert.deepStrictEqual(seen.map((s) => s.url), [`${ISSUER}/.well-known/openid-configuration`])
    }))

  it.effect("a document naming another issuer fails the layer: DiscoveryFailed names the URL and both issuers", () =>
    Effect.gen(function*() {
      const { layer } = pathProvider({ discoveredIssuer: "http://idp.test/realms/y" })
      const error = failureOf(yield* Effect.exit(Effect.scoped(Layer.build(layerWith(layer)))))
      assert.isTrue(TokenError.isDiscoveryFailed(error))
      if (!TokenError.isDiscoveryFailed(error)) return
      assert.strictEqual(error.discoveryUrl, `${ISSUER}/.well-known/openid-configuration`)
      assert.strictEqual(error.issuer, ISSUER)
      assert.strictEqual(error.foundIssuer, "http://idp.test/realms/y")
      assert.isFalse(TokenError.isTransient(error), "a misconfiguration, not an outage")
      assert.include(error.message, "http://idp.test/realms/y")
      assert.include(error.message, `${ISSUER}/.well-known/openid-configuration`)
    }))

  it.effect("a document that is not metadata, or no document (404), fails the layer as not transient", () =>
    Effect.gen(function*() {
      for (const answer of [new Response("<html>login</html>", { status: 200 }), new Response("", { status: 404 })]) {
        const { layer } = transport(() => Effect.succeed(answer.clone()))
        const error = failureOf(yield* Effect.exit(Effect.scoped(Layer.build(layerWith(layer)))))
        assert.strictEqual(error._tag, "DiscoveryFailed")
        if (error._tag === "DiscoveryFailed") assert.isFalse(error.transient)
      }
    }))

  it.effect("an unreachable provider fails the layer as transient; with discovery: \"lazy\" it builds", () =>
    Effect.gen(function*() {
      const down = transport(() => Effect.succeed(new Response("", { status: 503, headers: { "retry-after": "5" } })))
      const error = failureOf(yield* Effect.exit(Effect.scoped(Layer.build(layerWith(down.layer)))))
      assert.strictEqual(error._tag, "DiscoveryFailed")
      if (error._tag === "DiscoveryFailed") {
        assert.isTrue(TokenError.isTransient(error))
        assert.strictEqual(error.status, 503)
      }
      const lazy = yield* Effect.exit(Effect.scoped(Layer.build(layerWith(down.layer, "lazy"))))
      assert.isTrue(Exit.isSuccess(lazy), "lazy discovery does not reach the provider at start-up")
    }))

  it.effect("the managers' own layers discover eagerly too (without AccessTokenManagement)", () =>
    Effect.gen(function*() {
      const { layer } = pathProvider({ discoveredIssuer: "http://idp.test/realms/y" })
      const endpoint = TokenEndpoint.layerDefault.pipe(Layer.provide(layer))
      const users = (discovery?: TokenEndpoint.Discovery) =>
        UserTokens.layer({ client: { ...machine, issuer: ISSUER }, ...(discovery ? { discovery } : {}) })
          .pipe(Layer.provide(Layer.mergeAll(endpoint, UserTokenStore.layerMemory(), TokenLock.layerMemory)))
      const machines = ClientCredentialsTokens.layerMemory({ clients: { machine: { ...machine, issuer: ISSUER } } })
        .pipe(Layer.provide(endpoint))
      const failures = [failureOf(yield* buildExit(users())), failureOf(yield* buildExit(machines))]
      for (const error of failures) {
        assert.isTrue(TokenError.isDiscoveryFailed(error), "a wrong issuer fails the layer, not a user's refresh")
        if (TokenError.isDiscoveryFailed(error)) assert.strictEqual(error.foundIssuer, "http://idp.test/realms/y")
      }
      const lazy = yield* buildExit(users("lazy"))
      assert.isTrue(Exit.isSuccess(lazy))
    }))
})

const buildExit = <A, E>(layer: Layer.Layer<A, E>) => Effect.exit(Effect.scoped(Layer.build(layer)))

describe("user refreshes with tokenEndpoint, issuer, or both (an issuer with a path)", () => {
  const user = new CurrentUser.User({ subject: "alice" })
  const configurations = {
    "issuer only": { issuer: ISSUER },
    "tokenEndpoint only": { tokenEndpoint: TOKEN_ENDPOINT },
    "tokenEndpoint and issuer": { issuer: ISSUER, tokenEndpoint: TOKEN_ENDPOINT }
  }
  for (const [name, endpoints] of Object.entries(configurations)) {
    it.effect(`${name}: a refresh whose answer carries an ID token works, and the new tokens are stored`, () =>
      Effect.gen(function*() {
        const events = yield* OidcEvents.OidcEvents
        const tokens = yield* UserTokens.UserTokens
        const store = yield* UserTokenStore.UserTokenStore
        yield* events.tokenValidated(user, {
          access_token: "at-login",
          token_type: "Bearer",
          expires_in: 300,
          refresh_token: "rt-1",
          id_token: "id-login"
        })
        yield* TestClock.adjust("301 seconds")
        const token = yield* tokens.getFor(user)
        assert.strictEqual(Redacted.value(token.accessToken), "at-refresh_token")
        const stored = Option.getOrThrow(yield* store.get(CurrentUser.storeKey(user)))
        assert.strictEqual(Redacted.value(stored.refreshToken!), "rt-2")
        assert.strictEqual(claimsOf(Redacted.value(stored.idToken!)).iss, ISSUER)
      }).pipe(Effect.provide(
        UserTokens.layer({
          client: {
            ...endpoints,
            clientId: "web",
            clientSecret: Redacted.make("web-secret"),
            allowInsecureRequests: true
          },
          // kept so that the test can see which ID token the refresh validated
          keepIdToken: true
        }).pipe(
          Layer.provideMerge(Layer.mergeAll(UserTokenStore.layerMemory(), TokenLock.layerMemory)),
          Layer.provide(TokenEndpoint.layer()),
          Layer.provide(pathProvider().layer),
          Layer.orDie
        )
      )))
  }
})

const claimsOf = (jwt: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8"))
