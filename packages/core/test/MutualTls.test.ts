import { AccessToken, AccessTokenHttpClient, ClientCredentialsTokens, MutualTls } from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import { Agent } from "undici"
import { claims, clientCredentials, identity } from "../../../test/support/environment.js"
import { assertNoSecrets, renderings } from "../../../test/support/redaction.js"

const value = (token: { readonly accessToken: Redacted.Redacted<string> }) => Redacted.value(token.accessToken)

const thumbprint = (pem: string) =>
  Crypto.createHash("sha256").update(new Crypto.X509Certificate(pem).raw).digest("base64url")

/** Node: an undici Agent that presents the client certificate and trusts the provider's test CA. */
const mutualTls = Layer.unwrapEffect(
  Effect.map(
    IdentityProvider.IdentityProvider,
    (provider) =>
      MutualTls.layer((identity) =>
        Effect.sync(() =>
          NodeHttpClient.makeUndici(
            new Agent({
              connect: {
                cert: Redacted.value(identity.certificate),
                key: Redacted.value(identity.key),
                ca: [provider.testCertificates.ca]
              }
            })
          )
        )
      )
  )
)

const clientsFor = (provider: IdentityProvider.IdentityProvider["Type"]) => {
  const { client, selfSigned } = provider.testCertificates
  const base = { issuer: provider.issuer, tokenEndpoint: provider.mtlsTokenEndpoint, scope: "api.read" }
  const certificate = (pair: { readonly certificate: string; readonly key: string }) => ({
    clientCertificate: Redacted.make(pair.certificate),
    clientCertificateKey: Redacted.make(pair.key)
  })
  return {
    tls: {
      ...base,
      clientId: IdentityProvider.Clients.machineTls.clientId,
      authentication: "tls_client_auth" as const,
      ...certificate(client)
    },
    selfSigned: {
      ...base,
      clientId: IdentityProvider.Clients.machineSelfSignedTls.clientId,
      authentication: "self_signed_tls_client_auth" as const,
      ...certificate(selfSigned)
    },
    // the CA-issued client with a certificate the CA did not issue, and the self-signed client with another one
    tlsWrongCertificate: {
      ...base,
      clientId: IdentityProvider.Clients.machineTls.clientId,
      authentication: "tls_client_auth" as const,
      ...certificate(selfSigned)
    },
    selfSignedWrongCertificate: {
      ...base,
      clientId: IdentityProvider.Clients.machineSelfSignedTls.clientId,
      authentication: "self_signed_tls_client_auth" as const,
      ...certificate(client)
    }
  }
}

class BoundApi extends Context.Tag("test/MutualTls/BoundApi")<
  BoundApi,
  AccessTokenHttpClient.ClientCredentialsHttpClient
>() {}

/** The named client of the machine-tls client, presenting its certificate to the demo API's https listener. */
const boundApi = Layer.unwrapEffect(Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  const api = yield* DemoApi.DemoApi
  const { client } = provider.testCertificates
  return AccessTokenHttpClient.layerClientCredentials(BoundApi, {
    client: "tls",
    baseUrl: api.mtlsUrl,
    mutualTls: { certificate: Redacted.make(client.certificate), key: Redacted.make(client.key) }
  })
}))

/** A GET of the demo API with a token, over a connection that presents `certificate` (or none). */
const getWith = (
  url: string,
  token: AccessToken.AccessToken,
  certificate: { readonly certificate: string; readonly key: string } | undefined,
  ca: string
) =>
  Effect.gen(function*() {
    const http = NodeHttpClient.makeUndici(
      new Agent({
        connect: {
          ca: [ca],
          ...(certificate === undefined ? {} : { cert: certificate.certificate, key: certificate.key })
        }
      })
    )
    const response = yield* http.get(`${url}/data`, { headers: { authorization: AccessToken.authorization(token) } })
    return response.status
  })

const withClients = (transport: boolean) =>
  Layer.unwrapEffect(
    Effect.map(IdentityProvider.IdentityProvider, (provider) => clientCredentials({ clients: clientsFor(provider) }))
  ).pipe(Layer.provide(transport ? mutualTls : Layer.empty))

layer(identity())("mutual TLS client authentication (RFC 8705) against the embedded provider", (it) => {
  describe("tls_client_auth and self_signed_tls_client_auth", () => {
    it.effect("each method obtains a token bound to its certificate (cnf.x5t#S256)", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const tls = yield* tokens.get("tls")
        const selfSigned = yield* tokens.get("selfSigned")
        const tlsClaims = claims(value(tls))
        const selfSignedClaims = claims(value(selfSigned))
        assert.strictEqual(tlsClaims.client_id, IdentityProvider.Clients.machineTls.clientId)
        assert.deepStrictEqual(tlsClaims.cnf, { "x5t#S256": thumbprint(provider.testCertificates.client.certificate) })
        assert.strictEqual(selfSignedClaims.client_id, IdentityProvider.Clients.machineSelfSignedTls.clientId)
        assert.deepStrictEqual(selfSignedClaims.cnf, {
          "x5t#S256": thumbprint(provider.testCertificates.selfSigned.certificate)
        })
      }).pipe(Effect.provide(withClients(true))))

    it.effect("a certificate the client did not register is refused with invalid_client", () =>
      Effect.gen(function*() {
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        for (const name of ["tlsWrongCertificate", "selfSignedWrongCertificate"]) {
          const error = yield* Effect.flip(tokens.get(name))
          if (error._tag === "TokenRequestRejected") assert.strictEqual(error.error, "invalid_client", name)
          else assert.fail(`${name}: expected TokenRequestRejected, got ${error._tag}`)
        }
      }).pipe(Effect.provide(withClients(true))))

    it.effect("a certificate-bound token is accepted by the demo API only on a connection with its certificate", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const api = yield* DemoApi.DemoApi
        const { ca, client, selfSigned } = provider.testCertificates
        const named = yield* BoundApi
        const response = yield* named.get("/data")
        assert.strictEqual(response.status, 200, "the named client presents the certificate")
        const body = (yield* response.json) as { client_id: string }
        assert.strictEqual(body.client_id, IdentityProvider.Clients.machineTls.clientId)

        const token = yield* Effect.flatMap(
          ClientCredentialsTokens.ClientCredentialsTokens,
          (tokens) => tokens.get("tls")
        )
        assert.strictEqual(yield* getWith(api.mtlsUrl, token, client, ca), 200)
        assert.strictEqual(yield* getWith(api.mtlsUrl, token, undefined, ca), 401, "no certificate")
        assert.strictEqual(yield* getWith(api.mtlsUrl, token, selfSigned, ca), 401, "another certificate")
        assert.strictEqual(yield* getWith(api.url, token, undefined, ca), 401, "plain http")
      }).pipe(Effect.provide(boundApi.pipe(Layer.provideMerge(withClients(true)), Layer.provide(mutualTls)))))

    it.effect("without a MutualTls transport the request fails and says what to provide, showing no key", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const error = yield* Effect.flip(tokens.get("tls"))
        assert.strictEqual(error._tag, "TokenEndpointUnavailable")
        assert.include(error.message, "MutualTls.layer")
        assertNoSecrets(renderings(error), [provider.testCertificates.client.key.split("\n")[1]!])
      }).pipe(Effect.provide(withClients(false))))
  })
})
