import { ClientCredentialsTokens, TokenClient, TokenEndpoint, TokenError } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as Crypto from "node:crypto"
import { claims, clientCredentials, identity, tokenFromEnv } from "../../../test/support/environment.js"
import { clientCodeFlow } from "../../../test/support/login.js"
import { assertNoSecrets, renderings } from "../../../test/support/redaction.js"

const { machinePrivateKeyJwt, machineSecretJwt } = IdentityProvider.Clients

const value = (token: { readonly accessToken: Redacted.Redacted<string> }) => Redacted.value(token.accessToken)

/** The client assertions sent to the provider, decoded, in the order they were sent. */
const assertions: Array<{ header: Record<string, unknown>; payload: Record<string, unknown> }> = []

const decodePart = (part: string) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"))

/** The application's HttpClient, recording every client assertion that goes out. */
const recording = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(HttpClient.HttpClient, (client) =>
    HttpClient.tapRequest(client, (request) =>
      Effect.sync(() => {
        if (request.body._tag !== "Uint8Array") return
        const assertion = new URLSearchParams(new TextDecoder().decode(request.body.body)).get("client_assertion")
        if (assertion === null) return
        const [header, payload] = assertion.split(".")
        assertions.push({ header: decodePart(header!), payload: decodePart(payload!) })
      })))
)

const otherEcKey = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
  format: "pem",
  type: "pkcs8"
}) as string

const otherEd25519Key = Crypto.generateKeyPairSync("ed25519").privateKey.export({
  format: "pem",
  type: "pkcs8"
}) as string

const clientsFor = (provider: IdentityProvider.IdentityProvider["Type"]) => ({
  pemKey: {
    issuer: provider.issuer,
    clientId: machinePrivateKeyJwt.clientId,
    authentication: "private_key_jwt" as const,
    privateKey: Redacted.make(provider.clientPrivateKeys.pem),
    scope: "api.read"
  },
  jwkKey: {
    // without discovery: the assertion's audience is then the token endpoint
    tokenEndpoint: provider.tokenEndpoint,
    clientId: machinePrivateKeyJwt.clientId,
    authentication: "private_key_jwt" as const,
    privateKey: Redacted.make(provider.clientPrivateKeys.jwk),
    scope: "api.read"
  },
  pssKey: {
    // the FAPI choice for an RSA key
    issuer: provider.issuer,
    clientId: machinePrivateKeyJwt.clientId,
    authentication: "private_key_jwt" as const,
    privateKey: Redacted.make(provider.clientPrivateKeys.jwk),
    signingAlgorithm: "PS256" as const,
    scope: "api.read"
  },
  ed25519Pem: {
    issuer: provider.issuer,
    clientId: machinePrivateKeyJwt.clientId,
    authentication: "private_key_jwt" as const,
    privateKey: Redacted.make(provider.clientPrivateKeys.ed25519.pem),
    scope: "api.read"
  },
  ed25519Jwk: {
    issuer: provider.issuer,
    clientId: machinePrivateKeyJwt.clientId,
    authentication: "private_key_jwt" as const,
    privateKey: Redacted.make(provider.clientPrivateKeys.ed25519.jwk),
    scope: "api.read"
  },
  wrongEd25519Key: {
    issuer: provider.issuer,
    clientId: machinePrivateKeyJwt.clientId,
    authentication: "private_key_jwt" as const,
    privateKey: Redacted.make(otherEd25519Key)
  },
  wrongKey: {
    issuer: provider.issuer,
    clientId: machinePrivateKeyJwt.clientId,
    authentication: "private_key_jwt" as const,
    privateKey: Redacted.make(otherEcKey)
  },
  secretJwt: {
    issuer: provider.issuer,
    clientId: machineSecretJwt.clientId,
    clientSecret: Redacted.make(machineSecretJwt.clientSecret),
    authentication: "client_secret_jwt" as const
  },
  wrongSecretJwt: {
    issuer: provider.issuer,
    clientId: machineSecretJwt.clientId,
    clientSecret: Redacted.make("not-the-secret-of-machine-secret-jwt-0123456789abcdef"),
    authentication: "client_secret_jwt" as const
  }
})

const withClients = Layer.unwrapEffect(
  Effect.map(IdentityProvider.IdentityProvider, (provider) => clientCredentials({ clients: clientsFor(provider) }))
).pipe(Layer.provide(recording))

const setup = Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  yield* provider.setTokenFault(undefined)
  yield* provider.resetCounters
  assertions.length = 0
  return { provider, tokens: yield* ClientCredentialsTokens.ClientCredentialsTokens }
})

layer(identity())("client authentication against the embedded provider", (it) => {
  describe("private_key_jwt", () => {
    it.effect("a PEM key (ES256), a JWK key (RS256, its kid) and the JWK key with PS256 obtain tokens", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const fromPem = yield* tokens.get("pemKey")
        const fromJwk = yield* tokens.get("jwkKey")
        const withPss = yield* tokens.get("pssKey")
        assert.strictEqual(claims(value(fromPem)).client_id, machinePrivateKeyJwt.clientId)
        assert.strictEqual(claims(value(fromJwk)).client_id, machinePrivateKeyJwt.clientId)
        assert.strictEqual(claims(value(withPss)).client_id, machinePrivateKeyJwt.clientId)
        assert.strictEqual(yield* provider.tokenRequests({ clientId: machinePrivateKeyJwt.clientId }), 3)
        assert.deepStrictEqual(assertions.map((a) => a.header.alg), ["ES256", "RS256", "PS256"])
        assert.strictEqual(assertions[1]!.header.kid, JSON.parse(provider.clientPrivateKeys.jwk).kid)
        assert.strictEqual(assertions[0]!.payload.aud, provider.issuer)
        assert.strictEqual(assertions[1]!.payload.aud, provider.tokenEndpoint)
      }).pipe(Effect.provide(withClients)))

    it.effect("an Ed25519 key, as a PEM and as a JWK (its kid), obtains tokens with EdDSA assertions", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        const fromPem = yield* tokens.get("ed25519Pem")
        const fromJwk = yield* tokens.get("ed25519Jwk")
        assert.strictEqual(claims(value(fromPem)).client_id, machinePrivateKeyJwt.clientId)
        assert.strictEqual(claims(value(fromJwk)).client_id, machinePrivateKeyJwt.clientId)
        assert.strictEqual(yield* provider.tokenRequests({ clientId: machinePrivateKeyJwt.clientId }), 2)
        assert.deepStrictEqual(assertions.map((a) => a.header.alg), ["EdDSA", "EdDSA"])
        assert.isUndefined(assertions[0]!.header.kid)
        assert.strictEqual(assertions[1]!.header.kid, JSON.parse(provider.clientPrivateKeys.ed25519.jwk).kid)
      }).pipe(Effect.provide(withClients)))

    it.effect("an Ed25519 key the client did not register is refused with invalid_client", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const error = yield* Effect.flip(tokens.get("wrongEd25519Key"))
        assert.strictEqual(error._tag, "TokenRequestRejected")
        if (error._tag === "TokenRequestRejected") assert.strictEqual(error.error, "invalid_client")
        assert.deepStrictEqual(assertions.map((a) => a.header.alg), ["EdDSA"])
        assertNoSecrets(renderings(error), [otherEd25519Key])
      }).pipe(Effect.provide(withClients)))

    it.effect("a key the client did not register is refused with invalid_client", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const error = yield* Effect.flip(tokens.get("wrongKey"))
        assert.strictEqual(error._tag, "TokenRequestRejected")
        if (error._tag === "TokenRequestRejected") assert.strictEqual(error.error, "invalid_client")
        assertNoSecrets(renderings(error), [otherEcKey])
      }).pipe(Effect.provide(withClients)))

    it.effect("every request and every retry carries a new assertion: the provider's replay check passes", () =>
      Effect.gen(function*() {
        const { provider, tokens } = yield* setup
        yield* provider.setTokenFault({ _tag: "ServerError", status: 503 }, { times: 1 })
        const failed = yield* Effect.flip(tokens.get("pemKey"))
        assert.strictEqual(failed._tag, "TokenEndpointUnavailable")
        yield* TestClock.adjust("2 seconds") // past the backoff: the retry goes out
        const first = yield* tokens.get("pemKey")
        const second = yield* tokens.get("pemKey", { forceRenewal: true })
        const third = yield* tokens.get("pemKey", { forceRenewal: true })
        assert.strictEqual(new Set([value(first), value(second), value(third)]).size, 3)
        assert.strictEqual(assertions.length, 4)
        assert.strictEqual(new Set(assertions.map((a) => a.payload.jti)).size, 4, "one jti per request")
        for (const { payload } of assertions) {
          assert.strictEqual(payload.iss, machinePrivateKeyJwt.clientId)
          assert.strictEqual(payload.sub, machinePrivateKeyJwt.clientId)
          assert.isAbove(payload.exp as number, payload.iat as number)
        }
      }).pipe(Effect.provide(withClients)))

    it.effect("revocation authenticates the same way; a wrong key is refused there too", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const endpoint = yield* TokenEndpoint.TokenEndpoint
        const clients = clientsFor(provider)
        const { scope: _, ...pemKey } = clients.pemKey
        const client = yield* TokenClient.decode(pemKey)
        yield* endpoint.revoke(client, Redacted.make("some-token"), "refresh_token")
        const wrong = yield* TokenClient.decode(clients.wrongKey)
        const error = yield* Effect.flip(endpoint.revoke(wrong, Redacted.make("some-token"), "refresh_token"))
        if (error._tag === "TokenRequestRejected") assert.strictEqual(error.operation, "revocation")
        else assert.fail(`expected TokenRequestRejected, got ${error._tag}`)
      }).pipe(Effect.provide(withClients)))
  })

  describe("private_key_jwt for user tokens", () => {
    it.effect("the code exchange, the refresh and the revocation each authenticate with a fresh assertion", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const endpoint = yield* TokenEndpoint.TokenEndpoint
        assertions.length = 0
        const clientId = IdentityProvider.Clients.webPrivateKeyJwt.clientId
        const client = yield* TokenClient.decode({
          issuer: provider.issuer,
          clientId,
          authentication: "private_key_jwt",
          privateKey: Redacted.make(provider.clientPrivateKeys.pem)
        })
        // the authorization request, built with openid-client, completed without a browser
        const { signedIn } = yield* clientCodeFlow(client, "alice")
        assert.strictEqual(claims(value(signedIn.accessToken)).sub, "alice")
        const refreshed = yield* endpoint.request(
          client,
          TokenEndpoint.Grant.RefreshToken({ refreshToken: signedIn.refreshToken! })
        )
        assert.notStrictEqual(value(refreshed.accessToken), value(signedIn.accessToken))
        yield* endpoint.revoke(client, refreshed.refreshToken!, "refresh_token")
        const introspected = yield* provider.introspect(Redacted.value(refreshed.refreshToken!))
        assert.isFalse(introspected.active, "the refresh token was revoked")
        assert.strictEqual(assertions.length, 3)
        assert.strictEqual(new Set(assertions.map((a) => a.payload.jti)).size, 3)
      }).pipe(Effect.provide(withClients)))
  })

  describe("client_secret_jwt", () => {
    it.effect("obtains tokens with an HS256 assertion; a wrong secret is refused", () =>
      Effect.gen(function*() {
        const { tokens } = yield* setup
        const token = yield* tokens.get("secretJwt")
        assert.strictEqual(claims(value(token)).client_id, machineSecretJwt.clientId)
        assert.strictEqual(assertions[0]!.header.alg, "HS256")
        const again = yield* tokens.get("secretJwt", { forceRenewal: true })
        assert.notStrictEqual(value(again), value(token))
        assert.notStrictEqual(assertions[0]!.payload.jti, assertions[1]!.payload.jti)
        const error = yield* Effect.flip(tokens.get("wrongSecretJwt"))
        assert.strictEqual(error._tag, "TokenRequestRejected")
        if (error._tag === "TokenRequestRejected") assert.strictEqual(error.error, "invalid_client")
      }).pipe(Effect.provide(withClients)))
  })

  describe("configuration", () => {
    it.effect("private_key_jwt by configuration alone (AUTHENTICATION, PRIVATE_KEY)", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const token = yield* tokenFromEnv({
          WORKER_ISSUER: provider.issuer,
          WORKER_CLIENT_ID: machinePrivateKeyJwt.clientId,
          WORKER_AUTHENTICATION: "private_key_jwt",
          WORKER_PRIVATE_KEY: provider.clientPrivateKeys.pem
        })
        assert.strictEqual(claims(value(token)).client_id, machinePrivateKeyJwt.clientId)
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("a missing, unusable or mismatched key fails the layer, naming the field, never showing the key", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const base = {
          WORKER_ISSUER: provider.issuer,
          WORKER_CLIENT_ID: machinePrivateKeyJwt.clientId,
          WORKER_AUTHENTICATION: "private_key_jwt"
        }
        const missing = yield* Effect.flip(tokenFromEnv(base))
        assert.strictEqual(missing._tag, "InvalidClientConfiguration")
        if (missing._tag === "InvalidClientConfiguration") assert.strictEqual(missing.field, "privateKey")

        const garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----"
        const unusable = yield* Effect.flip(tokenFromEnv({ ...base, WORKER_PRIVATE_KEY: garbage }))
        assert.strictEqual(unusable._tag, "InvalidClientConfiguration")
        if (unusable._tag === "InvalidClientConfiguration") assert.strictEqual(unusable.field, "privateKey")
        assertNoSecrets(renderings(unusable), ["bm90IGEga2V5IGF0IGFsbA"])

        const publicJwk = JSON.stringify(
          Crypto.createPublicKey(provider.clientPrivateKeys.pem).export({ format: "jwk" })
        )
        const onlyPublic = yield* Effect.flip(tokenFromEnv({ ...base, WORKER_PRIVATE_KEY: publicJwk }))
        if (onlyPublic._tag === "InvalidClientConfiguration") assert.include(onlyPublic.reason, "public JWK")
        else assert.fail(`expected InvalidClientConfiguration, got ${onlyPublic._tag}`)

        const mismatch = yield* Effect.flip(
          tokenFromEnv({
            ...base,
            WORKER_PRIVATE_KEY: provider.clientPrivateKeys.pem,
            WORKER_SIGNING_ALGORITHM: "RS256"
          })
        )
        if (mismatch._tag === "InvalidClientConfiguration") assert.strictEqual(mismatch.field, "signingAlgorithm")
        else assert.fail(`expected InvalidClientConfiguration, got ${mismatch._tag}`)
        assertNoSecrets([...renderings(missing), ...renderings(mismatch)], [provider.clientPrivateKeys.pem])
      }).pipe(Effect.provide(clientCredentials())))

    it.effect("a private key given as a plain string in code is refused without being shown", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const error = yield* Effect.flip(TokenClient.decode({
          issuer: provider.issuer,
          clientId: machinePrivateKeyJwt.clientId,
          authentication: "private_key_jwt",
          privateKey: provider.clientPrivateKeys.pem as never
        }))
        assert.instanceOf(error, TokenError.InvalidClientConfiguration)
        assert.strictEqual(error.field, "privateKey")
        assertNoSecrets(renderings(error), [provider.clientPrivateKeys.pem.split("\n")[1]!])
      }))
  })
})
