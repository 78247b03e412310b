import * as Effect from "effect/Effect"
import * as client from "openid-client"
import type * as IdentityProvider from "../src/IdentityProvider.js"

type Provider = IdentityProvider.IdentityProvider["Type"]

export const discover = (
  op: Provider,
  credentials: { readonly clientId: string; readonly clientSecret: string },
  method: "basic" | "post" = "basic"
) =>
  Effect.promise(() =>
    client.discovery(
      new URL(op.issuer),
      credentials.clientId,
      undefined,
      method === "basic" ?
        client.ClientSecretBasic(credentials.clientSecret) :
        client.ClientSecretPost(credentials.clientSecret),
      { execute: [client.allowInsecureRequests] }
    )
  )

/** a relying party's login: authorization URL with PKCE, state and nonce, `authorize`, code exchange */
export const login = (
  op: Provider,
  config: client.Configuration,
  account: string,
  options: {
    readonly scope?: string
    readonly redirectUri?: string
    readonly resource?: ReadonlyArray<string>
    readonly prompt?: string
  } = {}
) =>
  Effect.gen(function*() {
    const codeVerifier = client.randomPKCECodeVerifier()
    const codeChallenge = yield* Effect.promise(() => client.calculatePKCECodeChallenge(codeVerifier))
    const state = client.randomState()
    const nonce = client.randomNonce()
    const params = new URLSearchParams({
      redirect_uri: options.redirectUri ?? "http://127.0.0.1:3000/callback",
      scope: options.scope ?? "openid profile email offline_access api.read api.write other.read",
      code_challenge: codeChallenge,
      code_challenge_method: "S256",
      state,
      nonce
    })
    for (const resource of options.resource ?? []) params.append("resource", resource)
    if (options.prompt !== undefined) params.set("prompt", options.prompt)
    const url = client.buildAuthorizationUrl(config, params)
    const redirect = yield* op.authorize(url, account)
    return yield* Effect.promise(() =>
      client.authorizationCodeGrant(config, redirect, {
        pkceCodeVerifier: codeVerifier,
        expectedState: state,
        expectedNonce: nonce
      })
    )
  })

export const decode = (jwt: string): Record<string, any> =>
  JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8"))

export const decodeHeader = (jwt: string): Record<string, any> =>
  JSON.parse(Buffer.from(jwt.split(".")[0]!, "base64url").toString("utf8"))

/** a raw token request, to see exactly what the token endpoint answered */
export const rawTokenRequest = (op: Provider, body: Record<string, string>, basic?: readonly [string, string]) =>
  Effect.promise(async () => {
    const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" }
    if (basic !== undefined) {
      headers.authorization = `Basic ${Buffer.from(`${basic[0]}:${basic[1]}`).toString("base64")}`
    }
    const response = await fetch(op.tokenEndpoint, {
      method: "POST",
      headers,
      body: new URLSearchParams(body).toString()
    })
    return {
      status: response.status,
      contentType: response.headers.get("content-type") ?? "",
      retryAfter: response.headers.get("retry-after") ?? undefined,
      text: await response.text()
    }
  })

/** the error an openid-client call failed with (`error` of an OAuth error response, or the error's name) */
export const oauthError = <A>(promise: () => Promise<A>) =>
  Effect.tryPromise(promise).pipe(
    Effect.flip,
    Effect.map((e) => {
      const cause = e.error as any
      return { error: String(cause?.error ?? cause?.code ?? cause?.name), cause }
    })
  )
