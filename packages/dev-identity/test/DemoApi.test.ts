import { assert, describe, it, layer } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as client from "openid-client"
import * as DemoApi from "../src/DemoApi.js"
import * as IdentityProvider from "../src/IdentityProvider.js"
import { discover, login } from "./helpers.js"

const { Clients, Resources } = IdentityProvider

const DevIdentity = DemoApi.layer().pipe(Layer.provideMerge(IdentityProvider.layer()))

const get = (url: string, authorization?: string) =>
  Effect.promise(async () => {
    const response = await fetch(url, { headers: authorization === undefined ? {} : { authorization } })
    return {
      status: response.status,
      challenge: response.headers.get("www-authenticate"),
      body: await response.json() as Record<string, any>
    }
  })

const machineToken = Effect.gen(function*() {
  const op = yield* IdentityProvider.IdentityProvider
  const config = yield* discover(op, Clients.machineBasic)
  const response = yield* Effect.promise(() => client.clientCredentialsGrant(config, { scope: "api.read" }))
  return response.access_token
})

const assertInvalidToken = (
  response: { readonly status: number; readonly challenge: string | null },
  token: string | undefined,
  description: RegExp
) => {
  assert.strictEqual(response.status, 401)
  const challenge = response.challenge ?? ""
  assert.match(challenge, /^Bearer realm="demo-api", error="invalid_token", error_description="[^"]+"$/)
  assert.match(challenge, description)
  if (token !== undefined) {
    for (const part of token.split(".")) assert.notInclude(challenge, part, "the token is not echoed")
  }
}

layer(DevIdentity)("DemoApi", (it) => {
  it.effect("answers 200 with an echo of a valid token, for any GET path", () =>
    Effect.gen(function*() {
      const api = yield* DemoApi.DemoApi
      const op = yield* IdentityProvider.IdentityProvider
      assert.match(api.url, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.strictEqual(api.audience, Resources.demoApi)

      const token = yield* machineToken
      const data = yield* get(`${api.url}/data?x=1`, `Bearer ${token}`)
      assert.strictEqual(data.status, 200)
      assert.strictEqual(data.body.sub, "machine-basic")
      assert.strictEqual(data.body.client_id, "machine-basic")
      assert.strictEqual(data.body.scope, "api.read")
      assert.strictEqual(data.body.aud, Resources.demoApi)
      assert.strictEqual(data.body.path, "/data")
      assert.isString(data.body.jti)
      assert.isNumber(data.body.exp)

      const web = yield* discover(op, Clients.web)
      const user = yield* login(op, web, "alice")
      const me = yield* get(`${api.url}/me`, `Bearer ${user.access_token}`)
      assert.strictEqual(me.status, 200)
      assert.strictEqual(me.body.sub, "alice")
      assert.strictEqual(me.body.client_id, "web")
      assert.strictEqual(me.body.path, "/me")

      // the DPoP scheme is for DPoP-bound tokens only (see the DPoP tests in packages/core)
      const unbound = yield* get(`${api.url}/data`, `DPoP ${token}`)
      assert.strictEqual(unbound.status, 401)
      assert.strictEqual(unbound.body.error, "invalid_token")
      const es256 = yield* op.mintAccessToken({ alg: "ES256" })
      assert.strictEqual((yield* get(`${api.url}/data`, `Bearer ${es256}`)).status, 200)
    }))

  it.effect("answers 401 invalid_token for missing, malformed, forged, expired or foreign tokens", () =>
    Effect.gen(function*() {
      const api = yield* DemoApi.DemoApi
      const op = yield* IdentityProvider.IdentityProvider
      const token = yield* machineToken

      assertInvalidToken(yield* get(`${api.url}/data`), undefined, /no access token/)
      assertInvalidToken(yield* get(`${api.url}/data`, `Basic ${token}`), token, /not a Bearer token/)
      assertInvalidToken(yield* get(`${api.url}/data`, "Bearer not.a.jwt"), undefined, /not a valid JWT/)

      const [header, payload, signature] = token.split(".") as [string, string, string]
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString())
      const forged = `${header}.${
        Buffer.from(JSON.stringify({ ...claims, sub: "admin" })).toString("base64url")
      }.${signature}`
      assertInvalidToken(yield* get(`${api.url}/data`, `Bearer ${forged}`), forged, /signature/)

      const expired = yield* op.mintAccessToken({ expiresIn: -1 })
      assertInvalidToken(yield* get(`${api.url}/data`, `Bearer ${expired}`), expired, /expired/)

      const config = yield* discover(op, Clients.machineBasic)
      const otherApi = yield* Effect.promise(() =>
        client.clientCredentialsGrant(config, { resource: Resources.otherApi, scope: "other.read" })
      )
      assertInvalidToken(yield* get(`${api.url}/data`, `Bearer ${otherApi.access_token}`), undefined, /aud/)

      // same keys, other issuer: a second provider in this process
      const foreign = yield* Effect.scoped(Effect.flatMap(IdentityProvider.make(), (other) => other.mintAccessToken()))
      assertInvalidToken(yield* get(`${api.url}/data`, `Bearer ${foreign}`), foreign, /iss/)
    }))

  it.effect("rejectNextValidTokens(n) answers 401 to the next n requests with a valid token", () =>
    Effect.gen(function*() {
      const api = yield* DemoApi.DemoApi
      const token = yield* machineToken
      const before = yield* api.requests

      yield* api.rejectNextValidTokens(2)
      assertInvalidToken(yield* get(`${api.url}/data`, "Bearer nope"), undefined, /not a valid JWT/)
      assertInvalidToken(yield* get(`${api.url}/data`, `Bearer ${token}`), token, /rejectNextValidTokens/)
      assertInvalidToken(yield* get(`${api.url}/data`, `Bearer ${token}`), token, /rejectNextValidTokens/)
      assert.strictEqual((yield* get(`${api.url}/data`, `Bearer ${token}`)).status, 200)

      assert.strictEqual((yield* api.requests) - before, 4)
    }))
})

describe("DemoApi standalone", () => {
  it.scoped("layerConfig verifies tokens of the issuer it is configured with", () =>
    Effect.gen(function*() {
      const op = yield* IdentityProvider.make()
      const token = yield* op.mintAccessToken({ sub: "zoe" })
      const response = yield* Effect.flatMap(DemoApi.DemoApi, (api) => get(`${api.url}/x`, `Bearer ${token}`)).pipe(
        Effect.provide(DemoApi.layerConfig({
          issuer: Config.string("DEMO_API_ISSUER"),
          jwksUri: Config.string("DEMO_API_JWKS_URI")
        })),
        Effect.withConfigProvider(ConfigProvider.fromMap(
          new Map([["DEMO_API_ISSUER", op.issuer], ["DEMO_API_JWKS_URI", op.jwksUri]])
        ))
      )
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.body.sub, "zoe")
    }))
})
