import {
  AccessToken,
  AccessTokenHttpClient,
  ClientCredentialsTokens,
  CurrentUser,
  MutualTls,
  OidcEvents,
  TokenClient,
  TokenEndpoint,
  TokenExchange,
  UserTokens
} from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import { Agent } from "undici"
import { claims, clientCredentials, identity, tokenFromEnv, userTokens } from "../../../test/support/environment.js"
import { clientCodeFlow } from "../../../test/support/login.js"
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

  describe("configuration", () => {
    it.effect("tls_client_auth by configuration alone, its token endpoint from discovery's aliases", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const { client } = provider.testCertificates
        const token = yield* tokenFromEnv({
          WORKER_ISSUER: provider.issuer,
          WORKER_CLIENT_ID: IdentityProvider.Clients.machineTls.clientId,
          WORKER_AUTHENTICATION: "tls_client_auth",
          WORKER_CLIENT_CERTIFICATE: client.certificate,
          WORKER_CLIENT_CERTIFICATE_KEY: client.key
        })
        assert.deepStrictEqual(claims(value(token)).cnf, { "x5t#S256": thumbprint(client.certificate) })
      }).pipe(Effect.provide(withClients(true))))

    it.effect("a missing, unusable or mismatched certificate or key fails the layer, naming the field", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const { client, selfSigned } = provider.testCertificates
        const base = {
          WORKER_ISSUER: provider.issuer,
          WORKER_CLIENT_ID: IdentityProvider.Clients.machineTls.clientId,
          WORKER_AUTHENTICATION: "tls_client_auth"
        }
        const cases: Array<[Record<string, string>, string]> = [
          [{}, "clientCertificate"],
          [{ WORKER_CLIENT_CERTIFICATE: client.certificate }, "clientCertificateKey"],
          [{ WORKER_CLIENT_CERTIFICATE_KEY: client.key }, "clientCertificate"],
          [
            { WORKER_CLIENT_CERTIFICATE: client.certificate, WORKER_CLIENT_CERTIFICATE_KEY: selfSigned.key },
            "clientCertificateKey"
          ],
          [
            { WORKER_CLIENT_CERTIFICATE: "not a certificate", WORKER_CLIENT_CERTIFICATE_KEY: client.key },
            "clientCertificate"
          ]
        ]
        for (const [env, field] of cases) {
          const error = yield* Effect.flip(tokenFromEnv({ ...base, ...env }))
          if (error._tag === "InvalidClientConfiguration") {
            assert.strictEqual(error.field, field, Object.keys(env).join())
          } else assert.fail(`expected InvalidClientConfiguration naming ${field}, got ${error._tag}`)
          assertNoSecrets(renderings(error), [client.key.split("\n")[1]!, selfSigned.key.split("\n")[1]!])
        }
        const unknown = yield* Effect.flip(
          tokenFromEnv({ ...base, WORKER_AUTHENTICATION: "tls_client_authentication" })
        )
        assert.include(String(unknown), "AUTHENTICATION")
      }).pipe(Effect.provide(withClients(true))))
  })

  describe("user tokens and token exchange, with the endpoints of discovery's mtls_endpoint_aliases", () => {
    it.effect("code exchange, refresh, exchange and revocation go to the aliases; the named clients present the certificate", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const api = yield* DemoApi.DemoApi
        const endpoint = yield* TokenEndpoint.TokenEndpoint
        const { ca, client: certificate } = provider.testCertificates
        const bound = { "x5t#S256": thumbprint(certificate.certificate) }
        const client = yield* TokenClient.decode(webTlsClient(provider))

        // only the issuer is configured: the token and revocation endpoints come from discovery's aliases
        const metadata = yield* endpoint.metadata(client)
        assert.strictEqual(metadata.token_endpoint, provider.mtlsTokenEndpoint)
        assert.strictEqual(metadata.revocation_endpoint, provider.mtlsRevocationEndpoint)

        const user = yield* signInWithCertificate(client, "alice")
        const userTokens = yield* UserTokens.UserTokens
        const token = yield* userTokens.getFor(user)
        assert.deepStrictEqual(claims(value(token)).cnf, bound, "the code exchange went over mutual TLS")
        assert.strictEqual(yield* getWith(api.mtlsUrl, token, undefined, ca), 401, "the token needs the certificate")

        const userApi = yield* UserApi
        const response = yield* userApi.get("/data").pipe(CurrentUser.provide(user))
        assert.strictEqual(response.status, 200, "the user's named client presents the certificate")
        assert.strictEqual(((yield* response.json) as { sub: string }).sub, "alice")

        const refreshed = yield* userTokens.getFor(user, { forceRenewal: true })
        assert.notStrictEqual(value(refreshed), value(token))
        assert.deepStrictEqual(claims(value(refreshed)).cnf, bound, "the refresh went over mutual TLS")

        const exchangeApi = yield* ExchangeApi
        const exchanged = yield* exchangeApi.get("/data").pipe(CurrentUser.provide(user))
        assert.strictEqual(exchanged.status, 200, "the token-exchange named client presents the certificate")
        const exchangedToken = yield* Effect.flatMap(TokenExchange.TokenExchange, (e) => e.getFor(user, "demo"))
        assert.deepStrictEqual(claims(value(exchangedToken)).cnf, bound, "the exchange went over mutual TLS")
        assert.strictEqual(yield* getWith(api.mtlsUrl, exchangedToken, undefined, ca), 401)

        // tls_client_auth at the plain revocation endpoint would be refused (invalid_client): it went to the alias
        yield* endpoint.revoke(client, Redacted.make("an unknown refresh token"), "refresh_token")
      }).pipe(Effect.provide(userEnvironment)))
  })
})

class UserApi extends Context.Tag("test/MutualTls/UserApi")<UserApi, AccessTokenHttpClient.CurrentUserHttpClient>() {}

class ExchangeApi extends Context.Tag("test/MutualTls/ExchangeApi")<
  ExchangeApi,
  AccessTokenHttpClient.TokenExchangeHttpClient
>() {}

/** The web-tls client: only its issuer, so that its endpoints are discovered. */
function webTlsClient(provider: IdentityProvider.IdentityProvider["Type"]) {
  const { client } = provider.testCertificates
  return {
    issuer: provider.issuer,
    clientId: IdentityProvider.Clients.webTls.clientId,
    authentication: "tls_client_auth" as const,
    clientCertificate: Redacted.make(client.certificate),
    clientCertificateKey: Redacted.make(client.key)
  }
}

/** User tokens and token exchange for the web-tls client, and a named client of each for the demo API over mTLS. */
const userEnvironment = Layer.unwrapEffect(Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  const api = yield* DemoApi.DemoApi
  const { client } = provider.testCertificates
  const presented = { certificate: Redacted.make(client.certificate), key: Redacted.make(client.key) }
  return Layer.mergeAll(
    AccessTokenHttpClient.layerCurrentUser(UserApi, { baseUrl: api.mtlsUrl, mutualTls: presented }),
    AccessTokenHttpClient.layerTokenExchange(ExchangeApi, {
      target: "demo",
      baseUrl: api.mtlsUrl,
      mutualTls: presented
    })
  ).pipe(
    Layer.provideMerge(TokenExchange.layerMemory({
      client: webTlsClient(provider),
      targets: { demo: { resource: IdentityProvider.Resources.demoApi, scope: "api.read" } }
    })),
    Layer.provideMerge(userTokens({ client: webTlsClient(provider) }))
  )
})).pipe(Layer.provide(mutualTls), Layer.orDie)

/** The code flow of the web-tls client, its code exchange made by the library, the tokens seeded for the user. */
const signInWithCertificate = (client: TokenClient.TokenClient, account: string) =>
  Effect.gen(function*() {
    const { sentAt, signedIn } = yield* clientCodeFlow(client, account)
    const user = new CurrentUser.User({ subject: account })
    const { accessToken } = signedIn
    yield* Effect.flatMap(OidcEvents.OidcEvents, (events) =>
      events.tokenValidated(
        user,
        {
          access_token: Redacted.value(accessToken.accessToken),
          token_type: accessToken.tokenType,
          expires_in: Math.round((accessToken.expiresAt - accessToken.issuedAt) / 1000),
          refresh_token: Redacted.value(signedIn.refreshToken!)
        },
        undefined,
        { sentAt }
      ))
    return user
  })
