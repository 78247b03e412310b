import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Jose from "jose"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import * as Https from "node:https"
import * as Tls from "node:tls"
import type { DemoApi, StandaloneOptions } from "../DemoApi.js"
import { Resources } from "../IdentityProvider.js"
import { testCertificates } from "./certificates.js"
import { checkProof, supportedAlgorithms } from "./dpopProof.js"
import { keepAliveTimeout } from "./http.js"

const REALM = "demo-api"

const authorizationPattern = /^(Bearer|DPoP)[ \t]+([A-Za-z0-9\-._~+/]+=*)[ \t]*$/i

type Verified = { readonly _tag: "Valid"; readonly payload: Jose.JWTPayload } | {
  readonly _tag: "Invalid"
  readonly description: string
} | { readonly _tag: "Unavailable"; readonly description: string }

const describe = (error: unknown): Verified => {
  const code = (error as { code?: unknown })?.code
  switch (code) {
    case "ERR_JWT_EXPIRED":
      return { _tag: "Invalid", description: "the access token expired" }
    case "ERR_JWT_CLAIM_VALIDATION_FAILED": {
      const claim = (error as { claim?: unknown }).claim
      return { _tag: "Invalid", description: `the access token's ${String(claim)} claim is not accepted` }
    }
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return { _tag: "Invalid", description: "the access token signature is invalid" }
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return { _tag: "Invalid", description: "the access token signing algorithm is not accepted" }
    case "ERR_JWKS_NO_MATCHING_KEY":
    case "ERR_JWKS_MULTIPLE_MATCHING_KEYS":
      return { _tag: "Invalid", description: "the access token was not signed by a key of the issuer" }
    case "ERR_JWKS_TIMEOUT":
    case "ERR_JWKS_INVALID":
      return { _tag: "Unavailable", description: "the issuer's signing keys could not be loaded" }
    case "ERR_JWS_INVALID":
    case "ERR_JWT_INVALID":
      return { _tag: "Invalid", description: "the access token is not a valid JWT" }
    default:
      return error instanceof Jose.errors.JOSEError ?
        { _tag: "Invalid", description: "the access token is not valid" } :
        { _tag: "Unavailable", description: "the issuer's signing keys could not be loaded" }
  }
}

const challenge = (description: string) =>
  `Bearer realm="${REALM}", error="invalid_token", error_description="${description.replace(/["\\]/g, "'")}"`

const unauthorized = (description: string) =>
  HttpServerResponse.unsafeJson({ error: "invalid_token", error_description: description }, {
    status: 401,
    headers: { "www-authenticate": challenge(description), "cache-control": "no-store" }
  })

const quoted = (description: string) => `"${description.replace(/["\\]/g, "'")}"`

const dpopChallenge = (error: string, description: string, extra: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson({ error, error_description: description }, {
    status: 401,
    headers: {
      "www-authenticate": `DPoP algs="${supportedAlgorithms.join(" ")}", error="${error}", error_description=${
        quoted(description)
      }`,
      "cache-control": "no-store",
      ...extra
    }
  })

/** @internal */
export const make = (options: StandaloneOptions) =>
  Effect.gen(function*() {
    const audience = options.audience ?? Resources.demoApi
    const jwks = Jose.createRemoteJWKSet(new URL(options.jwksUri))
    const requests = yield* Ref.make(0)
    const rejectNext = yield* Ref.make(0)
    const windowSeconds = options.dpopWindowSeconds ?? 60

    // DPoP state: the proofs seen (jti, until they are too old to be accepted anyway) and the server nonce
    const seenProofs = new Map<string, number>()
    const nonces = { required: options.requireDPoPNonce ?? false, demanded: 0, current: newNonce() }
    const replayed = (jti: string, now: number): boolean => {
      if (seenProofs.has(jti)) return true
      if (seenProofs.size >= 100_000) {
        for (const [seen, until] of seenProofs) if (until < now) seenProofs.delete(seen)
      }
      seenProofs.set(jti, now + 2 * windowSeconds)
      return false
    }
    const checkDPoP = (
      request: HttpServerRequest.HttpServerRequest,
      token: string,
      jkt: string
    ): HttpServerResponse.HttpServerResponse | undefined => {
      const proof = request.headers["dpop"]
      if (proof === undefined || proof === "") {
        return dpopChallenge("invalid_dpop_proof", "no DPoP proof: send a DPoP header with the DPoP-bound token")
      }
      if (proof.includes(",")) return dpopChallenge("invalid_dpop_proof", "more than one DPoP proof")
      const now = Math.floor(Date.now() / 1000)
      // the URL as the client sees it, without query: checkProof compares it with htu as a string, then normalized
      const scheme = isTls(request) ? "https" : "http"
      const url = `${scheme}://${request.headers["host"] ?? "127.0.0.1"}${request.url.replace(/[?#].*$/s, "")}`
      const check = checkProof(proof, { method: request.method, url, accessToken: token, jkt, now, windowSeconds })
      if (check._tag === "Invalid") return dpopChallenge("invalid_dpop_proof", check.description)
      if (replayed(check.jti, now)) return dpopChallenge("invalid_dpop_proof", "the DPoP proof was used before (jti)")
      if (nonces.demanded > 0) {
        nonces.demanded--
        nonces.current = newNonce()
        return dpopChallenge("use_dpop_nonce", "a fresh DPoP nonce is required", { "dpop-nonce": nonces.current })
      }
      if (nonces.required && check.nonce !== nonces.current) {
        return dpopChallenge("use_dpop_nonce", "the DPoP proof must carry the server's nonce", {
          "dpop-nonce": nonces.current
        })
      }
      return undefined
    }

    const verify = (token: string) =>
      Effect.promise((): Promise<Verified> =>
        Jose.jwtVerify(token, jwks, {
          issuer: options.issuer,
          audience,
          algorithms: ["RS256", "ES256"],
          clockTolerance: 0,
          requiredClaims: ["exp"]
        }).then(({ payload }) => ({ _tag: "Valid", payload }), describe)
      )

    const app = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      yield* Ref.update(requests, (n) => n + 1)
      const header = request.headers["authorization"]
      if (header === undefined) return unauthorized("no access token: send Authorization: Bearer <token>")
      const match = authorizationPattern.exec(header)
      if (match === null) return unauthorized("the Authorization header is not a Bearer token")
      const isDPoP = match[1]!.toLowerCase() === "dpop"
      const verified = yield* verify(match[2]!)
      switch (verified._tag) {
        case "Invalid":
          return unauthorized(verified.description)
        case "Unavailable":
          return HttpServerResponse.unsafeJson(
            { error: "temporarily_unavailable", error_description: verified.description },
            { status: 503, headers: { "cache-control": "no-store" } }
          )
      }
      // a DPoP-bound token (cnf.jkt) is only accepted with a proof of its key (RFC 9449 §7)
      const cnf = verified.payload.cnf as { readonly jkt?: unknown } | undefined
      const jkt = typeof cnf?.jkt === "string" ? cnf.jkt : undefined
      if (jkt !== undefined && !isDPoP) {
        return unauthorized("the access token is DPoP-bound: send Authorization: DPoP <token> with a DPoP proof")
      }
      if (isDPoP) {
        if (jkt === undefined) return dpopChallenge("invalid_token", "the access token is not DPoP-bound")
        const refused = checkDPoP(request, match[2]!, jkt)
        if (refused !== undefined) return refused
      }
      // a certificate-bound token (cnf.x5t#S256) is only accepted on a connection that presents its certificate
      const x5t = (verified.payload.cnf as { readonly "x5t#S256"?: unknown } | undefined)?.["x5t#S256"]
      if (typeof x5t === "string") {
        const presented = peerThumbprint(request)
        if (presented === undefined) {
          return unauthorized("the access token is bound to a client certificate: present it over mutual TLS")
        }
        if (presented !== x5t) return unauthorized("the client certificate is not the one the access token is bound to")
      }
      const rejected = yield* Ref.modify(rejectNext, (n) => (n > 0 ? [true, n - 1] : [false, 0]))
      if (rejected) return unauthorized("the access token was rejected by the demo API (rejectNextValidTokens)")
      if (request.method !== "GET" && request.method !== "HEAD") {
        return HttpServerResponse.unsafeJson({ error: "method_not_allowed" }, {
          status: 405,
          headers: { allow: "GET" }
        })
      }
      const { aud, client_id, exp, jti, scope, sub } = verified.payload
      const path = new URL(request.url, "http://localhost").pathname
      return HttpServerResponse.unsafeJson(
        // `cnf` only for a sender-constrained token: which key or certificate the call proved
        { sub, client_id, scope, aud, jti, exp, path, ...(cnf === undefined ? {} : { cnf }) },
        { headers: { "cache-control": "no-store" } }
      )
    })

    const server = yield* NodeHttpServer.make(() => Http.createServer({ keepAliveTimeout }), {
      port: options.port ?? 0,
      host: "127.0.0.1"
    }).pipe(
      Effect.orDieWith((error) =>
        new Error(`dev-identity DemoApi: cannot listen on 127.0.0.1:${options.port ?? 0}: ${String(error.cause)}`)
      )
    )
    yield* HttpServer.serveEffect(app).pipe(Effect.provideService(HttpServer.HttpServer, server))
    const port = server.address._tag === "TcpAddress" ? server.address.port : 0
    const tls = testCertificates()
    const tlsServer = yield* NodeHttpServer.make(
      () =>
        Https.createServer({
          cert: tls.server.certificate,
          key: tls.server.key,
          requestCert: true,
          rejectUnauthorized: false,
          keepAliveTimeout
        }) as unknown as Http.Server,
      { port: 0, host: "127.0.0.1" }
    ).pipe(Effect.orDie)
    yield* HttpServer.serveEffect(app).pipe(Effect.provideService(HttpServer.HttpServer, tlsServer))
    const tlsPort = tlsServer.address._tag === "TcpAddress" ? tlsServer.address.port : 0

    const service: DemoApi["Type"] = {
      url: `http://127.0.0.1:${port}`,
      mtlsUrl: `https://127.0.0.1:${tlsPort}`,
      audience,
      rejectNextValidTokens: (n) => Ref.set(rejectNext, Math.max(0, Math.floor(n))),
      requireDPoPNonce: (required) =>
        Effect.sync(() => {
          nonces.required = required
        }),
      demandFreshDPoPNonce: (n) =>
        Effect.sync(() => {
          nonces.demanded = Math.max(0, Math.floor(n))
        }),
      requests: Ref.get(requests)
    }
    return service
  })

/** The SHA-256 thumbprint of the client certificate presented on the request's connection, if any. */
const peerThumbprint = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const socket = NodeHttpServerRequest.toIncomingMessage(request).socket
  const certificate = socket instanceof Tls.TLSSocket ? socket.getPeerX509Certificate() : undefined
  return certificate === undefined ? undefined : Crypto.createHash("sha256").update(certificate.raw).digest("base64url")
}

/** Whether the request came over the https listener: a DPoP proof's `htu` names the URL with its scheme. */
const isTls = (request: HttpServerRequest.HttpServerRequest): boolean =>
  NodeHttpServerRequest.toIncomingMessage(request).socket instanceof Tls.TLSSocket

const newNonce = () => Crypto.randomBytes(16).toString("base64url")
