import {
  AccessToken,
  AccessTokenHttpClient,
  ClientCredentialsTokens,
  DPoP,
  TokenClient,
  TokenEndpoint
} from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { assert, describe, layer } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Jose from "jose"
import * as Crypto from "node:crypto"
import { Agent } from "undici"
import { claims, clientCredentials, identity } from "../../../test/support/environment.js"
import { assertNoSecrets, renderings } from "../../../test/support/redaction.js"

const { machineBasic, machineDpop } = IdentityProvider.Clients

/** The DPoP-bound machine client (and a plain one beside it) on a fresh manager. */
const dpopClients = (dpop: DPoP.Setting = true) =>
  Layer.unwrapEffect(Effect.map(IdentityProvider.IdentityProvider, (provider) =>
    clientCredentials({
      clients: {
        bound: {
          issuer: provider.issuer,
          clientId: machineDpop.clientId,
          clientSecret: Redacted.make(machineDpop.clientSecret),
          scope: "api.read",
          dpop
        },
        // the same client without DPoP: the provider refuses it a token
        unbound: {
          issuer: provider.issuer,
          clientId: machineDpop.clientId,
          clientSecret: Redacted.make(machineDpop.clientSecret),
          scope: "api.read"
        },
        bearer: {
          issuer: provider.issuer,
          clientId: machineBasic.clientId,
          clientSecret: Redacted.make(machineBasic.clientSecret),
          scope: "api.read"
        }
      }
    })))

/** The demo API through the token-attaching middleware of the `bound` client. */
const boundApi = Effect.gen(function*() {
  const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
  const http = yield* HttpClient.HttpClient
  return AccessTokenHttpClient.withAccessToken(http, AccessTokenHttpClient.clientCredentialsSource(tokens, "bound"))
})

/** A DPoP token bound to `key`, for the proof tests (its secret is what `ath` hashes). */
const boundToken = (key: Redacted.Redacted<string>) =>
  new AccessToken.AccessToken({
    accessToken: Redacted.make("an-access-token"),
    tokenType: "DPoP",
    issuedAt: 0,
    expiresAt: 1,
    dpopKey: key
  })

/** A request made by hand, outside the library. */
const raw = (url: string, init: RequestInit) =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const body = await response.json() as Record<string, unknown>
    return { status: response.status, body, challenge: response.headers.get("www-authenticate") ?? "" }
  })

const jsonOf = (response: { readonly json: Effect.Effect<unknown, unknown> }) =>
  Effect.map(Effect.orDie(response.json), (json) => json as Record<string, unknown>)

// proofs carry the real time (`iat`), checked by the provider and the API against theirs: no TestClock here
layer(identity(), { excludeTestServices: true })("DPoP", (it) => {
  describe("client credentials", () => {
    it.effect("a DPoP client gets a token bound to its key, and its named client's calls succeed", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const token = yield* tokens.get("bound")
        assert.strictEqual(token.tokenType, "DPoP")
        assert.isDefined(token.dpopKey)
        const cnf = claims(Redacted.value(token.accessToken)).cnf as { jkt: string }
        assert.strictEqual(cnf.jkt, DPoP.thumbprint(token.dpopKey!), "the token is bound to the key it carries")

        const client = yield* boundApi
        for (let i = 0; i < 3; i++) {
          const response = yield* client.get(`${api.url}/data?page=${i}`)
          assert.strictEqual(response.status, 200, "a proof per request, each accepted (no jti is reused)")
          assert.strictEqual((yield* jsonOf(response)).path, "/data")
        }
      }).pipe(Effect.provide(dpopClients())))

    it.effect("without a proof, the provider refuses a client that must use DPoP", () =>
      Effect.gen(function*() {
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const exit = yield* Effect.exit(tokens.get("unbound"))
        assert.isTrue(Exit.isFailure(exit))
      }).pipe(Effect.provide(dpopClients())))

    it.effect("the demo API refuses the bound token without a proof, as a bearer, or with a proof for another request", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const token = yield* tokens.get("bound")
        const secret = Redacted.value(token.accessToken)
        const url = `${api.url}/data`
        const proofFor = (method: string, target: string) =>
          Effect.map(DPoP.proof(token.dpopKey!, { method, url: target, token }), Redacted.value)

        const asBearer = yield* raw(url, { headers: { authorization: `Bearer ${secret}` } })
        assert.strictEqual(asBearer.status, 401, "a bound token is not a bearer token")
        const noProof = yield* raw(url, { headers: { authorization: `DPoP ${secret}` } })
        assert.strictEqual(noProof.status, 401)
        assert.strictEqual(noProof.body.error, "invalid_dpop_proof")
        const otherUrl = yield* raw(url, {
          headers: { authorization: `DPoP ${secret}`, dpop: yield* proofFor("GET", `${api.url}/other`) }
        })
        assert.strictEqual(otherUrl.status, 401)
        assert.match(String(otherUrl.body.error_description), /htu/)
        const otherMethod = yield* raw(url, {
          headers: { authorization: `DPoP ${secret}`, dpop: yield* proofFor("POST", url) }
        })
        assert.strictEqual(otherMethod.status, 401)
        assert.match(String(otherMethod.body.error_description), /htm/)
        const otherKey = yield* DPoP.generateKey()
        const wrongKey = yield* raw(url, {
          headers: {
            authorization: `DPoP ${secret}`,
            dpop: Redacted.value(yield* DPoP.proof(otherKey, { method: "GET", url, token }))
          }
        })
        assert.strictEqual(wrongKey.status, 401)
        assert.match(String(wrongKey.body.error_description), /bound/)

        const proof = yield* proofFor("GET", url)
        const first = yield* raw(url, { headers: { authorization: `DPoP ${secret}`, dpop: proof } })
        assert.strictEqual(first.status, 200, "the right proof is accepted")
        const replay = yield* raw(url, { headers: { authorization: `DPoP ${secret}`, dpop: proof } })
        assert.strictEqual(replay.status, 401, "a proof is accepted once")
        assert.match(String(replay.body.error_description), /jti/)

        // the library's own call succeeds where all of the above failed
        const response = yield* (yield* boundApi).get(url)
        assert.strictEqual(response.status, 200)
      }).pipe(Effect.provide(dpopClients())))

    it.effect("over https, the API checks htu with the https scheme: the library's calls succeed, a proof for http is refused", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        const provider = yield* IdentityProvider.IdentityProvider
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const token = yield* tokens.get("bound")
        const secret = Redacted.value(token.accessToken)
        // a transport that trusts the test CA of the demo API's https listener (no client certificate)
        const https = NodeHttpClient.makeUndici(new Agent({ connect: { ca: [provider.testCertificates.ca] } }))
        const url = `${api.mtlsUrl}/data`
        const withProofFor = (target: string) =>
          Effect.flatMap(
            DPoP.proof(token.dpopKey!, { method: "GET", url: target, token }),
            (proof) => https.get(url, { headers: { authorization: `DPoP ${secret}`, dpop: Redacted.value(proof) } })
          )

        const forHttp = yield* withProofFor(url.replace(/^https:/, "http:"))
        assert.strictEqual(forHttp.status, 401, "a proof for the http URL does not fit the https one")
        assert.match(String((yield* jsonOf(forHttp)).error_description), /htu/)
        assert.strictEqual((yield* withProofFor(url)).status, 200)

        const client = AccessTokenHttpClient.withAccessToken(
          https,
          AccessTokenHttpClient.clientCredentialsSource(tokens, "bound")
        )
        assert.strictEqual((yield* client.get(url)).status, 200, "the named client's proof names the https URL")
      }).pipe(Effect.provide(dpopClients())))

    it.effect("other algorithms are a configuration away", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const token = yield* tokens.get("bound")
        assert.strictEqual(JSON.parse(Redacted.value(token.dpopKey!)).alg, "EdDSA")
        const response = yield* (yield* boundApi).get(`${api.url}/data`)
        assert.strictEqual(response.status, 200)
      }).pipe(Effect.provide(dpopClients({ algorithm: "EdDSA" }))))
  })

  describe("nonces", () => {
    it.effect("the provider's nonce challenge is answered with exactly one retry, then remembered", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        yield* provider.requireDPoPNonce(true)
        yield* provider.resetCounters
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const token = yield* tokens.get("bound")
        assert.strictEqual(token.tokenType, "DPoP")
        assert.strictEqual(
          yield* provider.tokenRequests({ clientId: machineDpop.clientId }),
          2,
          "one refused for want of a nonce, one with it"
        )
        yield* tokens.get("bound", { forceRenewal: true })
        assert.strictEqual(
          yield* provider.tokenRequests({ clientId: machineDpop.clientId }),
          3,
          "the nonce is remembered for the provider's origin: no challenge the second time"
        )
      }).pipe(
        Effect.ensuring(
          Effect.flatMap(IdentityProvider.IdentityProvider, (provider) => provider.requireDPoPNonce(false))
        ),
        Effect.provide(dpopClients())
      ))

    it.effect("the API's nonce challenge is answered with exactly one retry, and the nonce is remembered", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        const provider = yield* IdentityProvider.IdentityProvider
        const client = yield* boundApi
        yield* client.get(`${api.url}/data`) // a token first: the requests counted below are the API's alone
        const tokensBefore = yield* provider.tokenRequests()
        yield* api.requireDPoPNonce(true)
        const before = yield* api.requests
        const first = yield* client.get(`${api.url}/data`)
        assert.strictEqual(first.status, 200)
        assert.strictEqual((yield* api.requests) - before, 2, "challenged once, retried once with the nonce")
        const second = yield* client.get(`${api.url}/data`)
        assert.strictEqual(second.status, 200)
        assert.strictEqual((yield* api.requests) - before, 3, "the nonce is remembered for the API's origin")

        // an API that wants yet another nonce after the retry gets no second retry, and the token is kept
        yield* api.demandFreshDPoPNonce(2)
        const refused = yield* client.get(`${api.url}/data`)
        assert.strictEqual(refused.status, 401)
        assert.strictEqual((yield* api.requests) - before, 5, "exactly one retry")
        assert.strictEqual(yield* provider.tokenRequests(), tokensBefore, "a nonce challenge does not renew the token")
        const after = yield* client.get(`${api.url}/data`)
        assert.strictEqual(after.status, 200, "the last nonce given is used next")
      }).pipe(
        Effect.ensuring(Effect.flatMap(DemoApi.DemoApi, (api) => api.requireDPoPNonce(false))),
        Effect.provide(dpopClients())
      ))
  })

  describe("redaction", () => {
    it.effect("no proof, key or token in what the middleware hands back, even for a request that set its own", () =>
      Effect.gen(function*() {
        const api = yield* DemoApi.DemoApi
        const tokens = yield* ClientCredentialsTokens.ClientCredentialsTokens
        const token = yield* tokens.get("bound")
        const seen: Array<string> = []
        const http = yield* HttpClient.HttpClient
        // a transport that keeps the proofs sent, to search for them afterwards
        const recording = HttpClient.mapRequest(http, (request) => {
          if (request.headers["dpop"] !== undefined) seen.push(request.headers["dpop"])
          return request
        })
        const client = AccessTokenHttpClient.withAccessToken(
          recording,
          AccessTokenHttpClient.clientCredentialsSource(tokens, "bound")
        ).pipe(HttpClient.filterStatusOk)
        const ok = yield* client.get(`${api.url}/data`)
        yield* api.rejectNextValidTokens(2)
        const failure = yield* Effect.flip(
          client.execute(
            HttpClientRequest.get(`${api.url}/data`).pipe(HttpClientRequest.setHeader("dpop", "caller-set-proof-value"))
          )
        )
        assert.isAtLeast(seen.length, 3)
        assert.notInclude(seen, "caller-set-proof-value", "the middleware makes its own proof")
        const jwk = JSON.parse(Redacted.value(token.dpopKey!)) as { d: string }
        assertNoSecrets(
          [...renderings(ok), ...renderings(ok.request), ...renderings(failure), ...renderings(token)],
          [...seen, Redacted.value(token.accessToken), jwk.d, "caller-set-proof-value"]
        )
        assert.isUndefined(Headers.get(ok.request.headers, "dpop")._tag === "Some" ? "dpop" : undefined)
      }).pipe(Effect.provide(dpopClients())))
  })

  describe("redaction at the token endpoint", () => {
    it.effect("a refused DPoP token request: no proof in the error, and the HTTP span redacts the dpop header", () =>
      Effect.gen(function*() {
        const provider = yield* IdentityProvider.IdentityProvider
        const proofs: Array<string> = []
        const http = yield* HttpClient.HttpClient
        // a transport that keeps the proofs sent, to search for them afterwards
        const recording = HttpClient.mapRequest(http, (request) => {
          if (request.headers["dpop"] !== undefined) proofs.push(request.headers["dpop"])
          return request
        })
        const spans = new InMemorySpanExporter()
        const tracing = NodeSdk.layer(() => ({
          resource: { serviceName: "effect-atm-test" },
          spanProcessor: new SimpleSpanProcessor(spans)
        }))
        const endpoint = yield* TokenEndpoint.make().pipe(Effect.provideService(HttpClient.HttpClient, recording))
        const key = yield* DPoP.generateKey()
        const client = yield* TokenClient.decode({
          issuer: provider.issuer,
          clientId: machineDpop.clientId,
          clientSecret: Redacted.make("not-the-secret-of-machine-dpop"),
          dpop: true
        })
        // the spans are read before the tracing layer shuts down (the exporter forgets them then)
        const [error, finished] = yield* Effect.flip(
          endpoint.request(client, TokenEndpoint.Grant.ClientCredentials({ dpopKey: key }))
        ).pipe(
          Effect.map((error) => [error, spans.getFinishedSpans()] as const),
          Effect.provide(tracing)
        )
        assert.strictEqual(error._tag, "TokenRequestRejected")
        assert.isAtLeast(proofs.length, 1, "the request carried a proof")
        const recorded = finished.flatMap((span) =>
          Object.entries(span.attributes).map(([name, value]) => `${span.name} ${name}=${String(value)}`)
        )
        assert.isTrue(
          recorded.some((line) => line.includes("http.request.header.dpop=<redacted>")),
          "the client's span shows the header, redacted"
        )
        assertNoSecrets([...renderings(error), ...recorded], [...proofs, "not-the-secret-of-machine-dpop"])
      }))
  })

  describe("configuration", () => {
    it.effect("DPOP from Effect Config: true, an algorithm, or false", () =>
      Effect.gen(function*() {
        const read = (value: string) =>
          Effect.flatMap(TokenClient.config, TokenClient.decode).pipe(
            Effect.withConfigProvider(
              ConfigProvider.fromMap(
                new Map([["ISSUER", "http://127.0.0.1:1"], ["CLIENT_ID", "c"], [
                  "CLIENT_SECRET",
                  "s"
                ], ["DPOP", value]])
              )
            )
          )
        assert.strictEqual((yield* read("true")).dpop, true)
        assert.deepStrictEqual((yield* read("ES384")).dpop, { algorithm: "ES384" })
        assert.strictEqual((yield* read("false")).dpop, false)
        assert.isTrue(Exit.isFailure(yield* Effect.exit(read("HS256"))))
        assert.strictEqual(DPoP.algorithmOf(undefined), undefined)
        assert.strictEqual(DPoP.algorithmOf(true), "ES256")
      }))
  })

  it.effect("a proof carries htm, htu without query or fragment, iat, a fresh jti and ath", () =>
    Effect.gen(function*() {
      const key = yield* DPoP.generateKey()
      const token = boundToken(key)
      const make = DPoP.proof(key, { method: "GET", url: "https://api.example/a/b?x=1#frag", token, nonce: "n-1" })
      const [a, b] = [yield* make, yield* make]
      const [header, payload] = Redacted.value(a).split(".").slice(0, 2).map((part) =>
        JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>
      )
      assert.strictEqual(header!.typ, "dpop+jwt")
      assert.strictEqual(header!.alg, "ES256")
      assert.isUndefined((header!.jwk as Record<string, unknown>).d, "the public key only")
      assert.strictEqual(payload!.htm, "GET")
      assert.strictEqual(payload!.htu, "https://api.example/a/b")
      assert.strictEqual(payload!.nonce, "n-1")
      assert.isNumber(payload!.iat)
      assert.strictEqual(
        payload!.ath,
        Crypto.createHash("sha256").update("an-access-token").digest("base64url")
      )
      assert.notStrictEqual(claims(Redacted.value(b)).jti, payload!.jti, "a fresh jti per proof")
    }))

  // proofs are signed with node:crypto over a header encoded once per key (internal/jws.ts): jose, which the
  // providers and APIs we talk to use, must accept them as they are, for every algorithm
  it.effect("jose verifies every algorithm's proofs, with the key in their header and the thumbprint we compute", () =>
    Effect.gen(function*() {
      for (const algorithm of ["ES256", "ES384", "ES512", "PS256", "RS256", "EdDSA"] as const) {
        const key = yield* DPoP.generateKey(algorithm)
        const token = boundToken(key)
        const proof = yield* DPoP.proof(key, { method: "POST", url: "https://api.example/a?b=c", token })
        const { payload, protectedHeader } = yield* Effect.promise(() =>
          Jose.jwtVerify(Redacted.value(proof), Jose.EmbeddedJWK, { typ: "dpop+jwt", algorithms: [algorithm] })
        )
        assert.strictEqual(protectedHeader.alg, algorithm)
        assert.strictEqual(payload.htu, "https://api.example/a")
        assert.strictEqual(payload.htm, "POST")
        assert.strictEqual(
          yield* Effect.promise(() => Jose.calculateJwkThumbprint(protectedHeader.jwk!, "sha256")),
          DPoP.thumbprint(key),
          algorithm
        )
      }
    }))
})
