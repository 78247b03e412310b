import { CurrentUser, OidcEvents, type TokenClient, TokenEndpoint } from "@effect-atm/core"
import { IdentityProvider } from "@effect-atm/dev-identity"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as oidc from "openid-client"

/** The confidential web client of the embedded provider, as an openid-client configuration. */
export const webClient = Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  const { clientId, clientSecret } = IdentityProvider.Clients.web
  return yield* Effect.promise(() =>
    oidc.discovery(new URL(provider.issuer), clientId, clientSecret, undefined, {
      execute: [oidc.allowInsecureRequests]
    })
  )
})

export interface LoginOptions {
  /** The resources the login asks for (default: both of the provider's); the token is for the first. */
  readonly resources?: ReadonlyArray<string> | undefined
  readonly scope?: string | undefined
  readonly sessionId?: string | undefined
}

/**
 * Signs `account` in through the real authorization code flow with PKCE (the provider's login form is driven over
 * HTTP, no browser), and returns the validated token endpoint response.
 */
export const codeFlow = (account: string, options?: LoginOptions) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const config = yield* webClient
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const nonce = oidc.randomNonce()
    const resources = options?.resources ?? [IdentityProvider.Resources.demoApi, IdentityProvider.Resources.otherApi]
    const parameters = new URLSearchParams({
      redirect_uri: "http://127.0.0.1:1/callback",
      scope: options?.scope ?? "openid profile offline_access api.read api.write other.read",
      code_challenge: yield* Effect.promise(() => oidc.calculatePKCECodeChallenge(verifier)),
      code_challenge_method: "S256",
      prompt: "consent",
      state,
      nonce
    })
    for (const resource of resources) parameters.append("resource", resource)
    const url = oidc.buildAuthorizationUrl(config, parameters)
    const callback = yield* provider.authorize(url, account)
    return yield* Effect.promise(() =>
      oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce
      }, { resource: resources[0]! })
    )
  })

/** Signs a user in and seeds the token store through `OidcEvents.tokenValidated`, as a login handler would. */
export const signIn = (account: string, options?: LoginOptions) =>
  Effect.gen(function*() {
    // the token's expiry counts from when the code exchange was sent, as the library's own requests count it
    const sentAt = yield* Clock.currentTimeMillis
    const response = yield* codeFlow(account, options)
    const user = new CurrentUser.User({
      subject: response.claims()!.sub,
      ...(options?.sessionId === undefined ? {} : { sessionId: options.sessionId })
    })
    const events = yield* OidcEvents.OidcEvents
    yield* events.tokenValidated(user, response, undefined, { sentAt })
    return { user, response }
  })

/**
 * The code flow of a library client, for the demo API, its code exchanged by the library's `TokenEndpoint` (so with
 * the client's own authentication): the provider's form driven over HTTP, no browser. Returns the endpoint's answer
 * and when the exchange was sent.
 */
export const clientCodeFlow = (client: TokenClient.TokenClient, account: string) =>
  Effect.gen(function*() {
    const provider = yield* IdentityProvider.IdentityProvider
    const endpoint = yield* TokenEndpoint.TokenEndpoint
    const metadata = yield* endpoint.metadata(client)
    const config = new oidc.Configuration(metadata as oidc.ServerMetadata, client.clientId)
    oidc.allowInsecureRequests(config)
    const verifier = oidc.randomPKCECodeVerifier()
    const state = oidc.randomState()
    const nonce = oidc.randomNonce()
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: "http://127.0.0.1:1/callback",
      scope: "openid offline_access api.read",
      code_challenge: yield* Effect.promise(() => oidc.calculatePKCECodeChallenge(verifier)),
      code_challenge_method: "S256",
      prompt: "consent",
      resource: IdentityProvider.Resources.demoApi,
      state,
      nonce
    })
    const callbackUrl = yield* provider.authorize(url, account)
    const sentAt = yield* Clock.currentTimeMillis
    const signedIn = yield* endpoint.request(
      client,
      TokenEndpoint.Grant.AuthorizationCode({
        callbackUrl,
        codeVerifier: Redacted.make(verifier),
        expectedState: state,
        expectedNonce: Redacted.make(nonce),
        options: { resource: IdentityProvider.Resources.demoApi }
      })
    )
    return { signedIn, sentAt }
  })

/**
 * Signs `account` in through an app's own login routes (`/auth/login`, the provider's form over HTTP, then
 * `/auth/callback`), as a browser would but without one; returns the `cookie` header that carries the session.
 */
export const appSessionCookie = (
  appUrl: string,
  provider: Pick<IdentityProvider.IdentityProvider["Type"], "authorize">,
  account: string
) =>
  Effect.gen(function*() {
    const cookies = new Map<string, string>()
    const remember = (response: Response) => {
      for (const header of response.headers.getSetCookie()) {
        const [pair = ""] = header.split(";")
        const eq = pair.indexOf("=")
        cookies.set(pair.slice(0, eq), pair.slice(eq + 1))
      }
    }
    const header = () => [...cookies].map(([name, value]) => `${name}=${value}`).join("; ")
    const start = yield* Effect.promise(() => fetch(`${appUrl}/auth/login?returnTo=/`, { redirect: "manual" }))
    remember(start)
    const callback = yield* provider.authorize(start.headers.get("location")!, account)
    const done = yield* Effect.promise(() =>
      fetch(`${appUrl}${callback.pathname}${callback.search}`, { redirect: "manual", headers: { cookie: header() } })
    )
    if (done.status !== 303) return yield* Effect.dieMessage(`the callback answered ${done.status}, not 303`)
    remember(done)
    return header()
  })
