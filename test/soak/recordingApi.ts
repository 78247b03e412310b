import type { IdentityProvider } from "@effect-atm/dev-identity"
import * as Effect from "effect/Effect"
import * as Jose from "jose"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/** What the recording API saw: every request, and whose token it carried for whom. */
export interface Recording {
  requests: number
  /** requests with a valid token of the user named in the path */
  valid: number
  /** requests whose token (valid or expired) was another user's than the one named in the path */
  otherUsersToken: Array<{ readonly path: string; readonly sub: unknown }>
  /** requests whose token had expired when it arrived (answered 401: the client replaces it and retries once) */
  expiredOnArrival: number
  /** requests without a token this provider signed for this API */
  invalid: number
}

/**
 * A protected API in the test process that answers `GET /users/<subject>` like the demo API (401 for an expired
 * or invalid token, no clock tolerance), and records, whatever the answer, whether the token was `<subject>`'s: it
 * sees the requests of instances that die before they could report them.
 */
export const recordingApi = (provider: IdentityProvider.IdentityProvider["Type"], audience: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const jwks = Jose.createRemoteJWKSet(new URL(provider.jwksUri))
      const recording: Recording = { requests: 0, valid: 0, otherUsersToken: [], expiredOnArrival: 0, invalid: 0 }
      const server = Http.createServer((request, response) => {
        recording.requests++
        const path = decodeURIComponent(new URL(request.url ?? "/", "http://localhost").pathname)
        const subject = path.startsWith("/users/") ? path.slice("/users/".length) : undefined
        const token = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(request.headers.authorization ?? "")?.[1]
        const answer = (status: number, body: unknown) => {
          response.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" })
          response.end(JSON.stringify(body))
        }
        if (token === undefined) {
          recording.invalid++
          return answer(401, { error: "invalid_token" })
        }
        const check = (sub: unknown) => {
          if (sub !== subject) recording.otherUsersToken.push({ path, sub })
        }
        Jose.jwtVerify(token, jwks, {
          issuer: provider.issuer,
          audience,
          algorithms: ["RS256", "ES256"],
          clockTolerance: 0,
          requiredClaims: ["exp", "sub"]
        }).then(
          ({ payload }) => {
            check(payload.sub)
            recording.valid++
            answer(200, { sub: payload.sub })
          },
          (error) => {
            // the signature was checked before the claims: an expired token's subject is the provider's word
            if (error instanceof Jose.errors.JWTExpired) {
              check(error.payload.sub)
              recording.expiredOnArrival++
            } else {
              recording.invalid++
            }
            answer(401, { error: "invalid_token" })
          }
        )
      })
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      return { server, recording, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
    }),
    ({ server }) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
      )
  )
