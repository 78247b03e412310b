import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as Jose from "jose"
import * as Http from "node:http"
import type { DemoApi, StandaloneOptions } from "../DemoApi.js"
import { Resources } from "../IdentityProvider.js"

const REALM = "demo-api"

// Accepts "DPoP" like "Bearer" for now; proof-of-possession checks come with DPoP support.
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

/** @internal */
export const make = (options: StandaloneOptions) =>
  Effect.gen(function*() {
    const audience = options.audience ?? Resources.demoApi
    const jwks = Jose.createRemoteJWKSet(new URL(options.jwksUri))
    const requests = yield* Ref.make(0)
    const rejectNext = yield* Ref.make(0)

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
      const rejected = yield* Ref.modify(rejectNext, (n) => (n > 0 ? [true, n - 1] : [false, 0]))
      if (rejected) return unauthorized("the access token was rejected by the demo API (rejectNextValidTokens)")
      if (request.method !== "GET" && request.method !== "HEAD") {
        return HttpServerResponse.unsafeJson({ error: "method_not_allowed" }, {
          status: 405,
          headers: { allow: "GET" }
        })
      }
      const { aud, client_id, exp, jti, scope, sub } = verified.payload
      return HttpServerResponse.unsafeJson(
        { sub, client_id, scope, aud, jti, exp, path: new URL(request.url, "http://localhost").pathname },
        { headers: { "cache-control": "no-store" } }
      )
    })

    const server = yield* NodeHttpServer.make(() => Http.createServer(), {
      port: options.port ?? 0,
      host: "127.0.0.1"
    }).pipe(
      Effect.orDieWith((error) =>
        new Error(`dev-identity DemoApi: cannot listen on 127.0.0.1:${options.port ?? 0}: ${String(error.cause)}`)
      )
    )
    yield* HttpServer.serveEffect(app).pipe(Effect.provideService(HttpServer.HttpServer, server))
    const port = server.address._tag === "TcpAddress" ? server.address.port : 0

    const service: DemoApi["Type"] = {
      url: `http://127.0.0.1:${port}`,
      audience,
      rejectNextValidTokens: (n) => Ref.set(rejectNext, Math.max(0, Math.floor(n))),
      requests: Ref.get(requests)
    }
    return service
  })
