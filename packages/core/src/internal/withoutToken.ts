import * as Headers from "@effect/platform/Headers"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as Effect from "effect/Effect"
import * as Inspectable from "effect/Inspectable"
import * as Stream from "effect/Stream"

/**
 * The caller's request without the headers that carry credentials (`Authorization`, `DPoP`): the middleware sets
 * its own, and what it hands back (responses, errors) carries this request, so no rendering shows one.
 *
 * @internal
 */
export const withoutCredentials = (request: HttpClientRequest.HttpClientRequest): HttpClientRequest.HttpClientRequest =>
  request.headers["authorization"] === undefined && request.headers["dpop"] === undefined
    ? request
    : HttpClientRequest.make(request.method)(request.url, {
      urlParams: request.urlParams,
      headers: Headers.remove(request.headers, ["authorization", "dpop"]),
      body: request.body,
      ...(request.hash._tag === "Some" ? { hash: request.hash.value } : {})
    })

/**
 * An error of a wrapped client, carrying `request` (the caller's, without the token) instead of the one sent.
 *
 * @internal
 */
export const errorWithoutToken = <E>(error: E, request: HttpClientRequest.HttpClientRequest): E => {
  if (!HttpClientError.isHttpClientError(error)) return error
  const details = {
    ...(error.cause === undefined ? {} : { cause: error.cause }),
    ...(error.description === undefined ? {} : { description: error.description })
  }
  return (error._tag === "RequestError"
    ? new HttpClientError.RequestError({ request, reason: error.reason, ...details })
    : new HttpClientError.ResponseError({
      request,
      response: error.response instanceof ResponseWithoutToken
        ? error.response
        : new ResponseWithoutToken(error.response, request),
      reason: error.reason,
      ...details
    })) as E
}

/**
 * A response as seen through the caller's request: everything is the original's, except that `request` — and
 * every error made from the response later (`HttpClient.filterStatusOk`, a body that does not decode) — is the
 * request without the `Authorization` and `DPoP` headers the middleware added.
 *
 * @internal
 */
export class ResponseWithoutToken extends Inspectable.Class implements HttpClientResponse.HttpClientResponse {
  readonly [HttpClientResponse.TypeId]: HttpClientResponse.TypeId = HttpClientResponse.TypeId
  readonly [HttpIncomingMessage.TypeId]: HttpIncomingMessage.TypeId = HttpIncomingMessage.TypeId

  constructor(
    private readonly original: HttpClientResponse.HttpClientResponse,
    readonly request: HttpClientRequest.HttpClientRequest
  ) {
    super()
  }

  private clean<A>(effect: Effect.Effect<A, HttpClientError.ResponseError>) {
    return Effect.mapError(effect, (error) => errorWithoutToken(error, this.request))
  }

  get status() {
    return this.original.status
  }
  get headers() {
    return this.original.headers
  }
  get cookies() {
    return this.original.cookies
  }
  get remoteAddress() {
    return this.original.remoteAddress
  }
  get formData() {
    return this.clean(this.original.formData)
  }
  get text() {
    return this.clean(this.original.text)
  }
  get json() {
    return this.clean(this.original.json)
  }
  get urlParamsBody() {
    return this.clean(this.original.urlParamsBody)
  }
  get arrayBuffer() {
    return this.clean(this.original.arrayBuffer)
  }
  get stream() {
    return Stream.mapError(this.original.stream, (error) => errorWithoutToken(error, this.request))
  }

  toJSON(): unknown {
    return {
      _id: "@effect/platform/HttpClientResponse",
      request: this.request.toJSON(),
      status: this.status,
      headers: Inspectable.redact(this.headers)
    }
  }
}
