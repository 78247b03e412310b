import * as Effect from "effect/Effect"
import * as Jose from "jose"
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import * as Https from "node:https"
import * as Tls from "node:tls"
import type * as OidcProvider from "oidc-provider"
import type { Configuration, Provider } from "oidc-provider"
import * as Api from "../IdentityProvider.js"
import type {
  ClientMetadata,
  IdentityProvider,
  MintLogoutOptions,
  MintOptions,
  Options,
  ResourceServer,
  TokenEndpointFault
} from "../IdentityProvider.js"
import { authorize } from "./authorize.js"
import { testCertificates } from "./certificates.js"
import { keepAliveTimeout } from "./http.js"
import { accountIdPattern, interactionsMiddleware } from "./interactions.js"
import { signingKeys } from "./keys.js"
import { makeAdapterFactory, MemoryStore } from "./memoryAdapter.js"
import * as Pages from "./pages.js"
import { tokenEndpointMiddleware, TokenEndpointState } from "./tokenEndpoint.js"

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
const WEB_SCOPE = "openid profile email offline_access api.read api.write other.read"
const MACHINE_SCOPE = "api.read api.write other.read"
const OIDC_SCOPES = ["openid", "offline_access", "profile", "email"] as const

const debug = (): boolean => {
  const value = process.env.DEV_IDENTITY_DEBUG
  return value !== undefined && value !== "" && value !== "0" && value !== "false"
}

type OidcProviderModule = typeof OidcProvider

let loading: Promise<OidcProviderModule> | undefined

// oidc-provider warns on import when Node.js is older than 22 ("Unsupported runtime"); it works on Node 20, and
// tests must stay quiet, so that one warning is dropped (unless DEV_IDENTITY_DEBUG is set).
const loadOidcProvider = (): Promise<OidcProviderModule> => {
  if (loading === undefined) {
    const warn = console.warn
    if (!debug()) {
      console.warn = (...args: Array<unknown>) => {
        if (typeof args[0] === "string" && args[0].includes("oidc-provider WARNING: Unsupported runtime")) return
        warn(...args)
      }
    }
    loading = import("oidc-provider").finally(() => {
      console.warn = warn
    })
    loading.catch(() => {
      loading = undefined
    })
  }
  return loading
}

const isLoopback = (value: string): boolean => {
  const url = URL.parse(value)
  return url !== null &&
    url.protocol === "http:" &&
    (url.hostname === "127.0.0.1" || url.hostname === "localhost" || url.hostname === "[::1]") &&
    url.username === "" && url.password === "" && url.hash === ""
}

const positiveInteger = (name: string, value: number): number => {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`dev-identity: ${name} must be a positive whole number of seconds, got ${value}`)
  }
  return value
}

const basic = (clientId: string, clientSecret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString("base64")}`

/** The client certificate of a request on the https listener, if it presented one. */
const peerCertificate = (req: Http.IncomingMessage): Crypto.X509Certificate | undefined => {
  const socket = req.socket
  return socket instanceof Tls.TLSSocket ? socket.getPeerX509Certificate() : undefined
}

/** The public JWK of a self-signed certificate, with the certificate in `x5c` (how the provider matches it). */
const selfSignedJwk = (certificate: string) => {
  const x509 = new Crypto.X509Certificate(certificate)
  return { ...x509.publicKey.export({ format: "jwk" }), x5c: [x509.raw.toString("base64")] }
}

/**
 * Key pairs of the `private_key_jwt` client: an ES256 key given as PEM, an RSA key given as a JWK, an Ed25519 key
 * (EdDSA, RFC 8037) given both ways. Made once per process, like the provider's signing keys: RSA key generation is
 * slow.
 */
let processClientKeys: ReturnType<typeof generateClientKeys> | undefined
const makeClientKeys = () => (processClientKeys ??= generateClientKeys())
const generateClientKeys = () => {
  const ec = Crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
  const rsa = Crypto.generateKeyPairSync("rsa", { modulusLength: 2048 })
  const ed25519 = Crypto.generateKeyPairSync("ed25519")
  const publicJwk = (key: Crypto.KeyObject) => {
    const jwk = key.export({ format: "jwk" })
    return { ...jwk, kid: Crypto.createHash("sha256").update(JSON.stringify(jwk)).digest("base64url") }
  }
  const ecPublic = publicJwk(ec.publicKey)
  const rsaPublic = publicJwk(rsa.publicKey)
  const ed25519Public = publicJwk(ed25519.publicKey)
  return {
    publicJwks: [ecPublic, rsaPublic, ed25519Public],
    pem: ec.privateKey.export({ format: "pem", type: "pkcs8" }) as string,
    jwk: JSON.stringify({ ...rsa.privateKey.export({ format: "jwk" }), kid: rsaPublic.kid }),
    ed25519: {
      pem: ed25519.privateKey.export({ format: "pem", type: "pkcs8" }) as string,
      jwk: JSON.stringify({ ...ed25519.privateKey.export({ format: "jwk" }), kid: ed25519Public.kid })
    }
  }
}

const withoutSecret = <A extends { readonly client_secret: string }>({ client_secret: _, ...rest }: A) => rest

const listen = (server: Http.Server, port: number) =>
  Effect.async<number, Error>((resume) => {
    const onError = (error: Error) => resume(Effect.fail(error))
    server.once("error", onError)
    server.listen({ port, host: "127.0.0.1" }, () => {
      server.off("error", onError)
      resume(Effect.succeed((server.address() as { port: number }).port))
    })
  })

const close = (server: Http.Server) =>
  Effect.async<void>((resume) => {
    if (!server.listening) return resume(Effect.void)
    server.close(() => resume(Effect.void))
    // connections kept alive by clients, or held by a Delay fault, would keep close() waiting
    server.closeAllConnections()
  })

/** @internal */
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    // the public module imports this one: its constants are read when a provider starts, not at import
    const { Clients, defaults, Resources } = Api
    const DEMO_API = Resources.demoApi
    const accessTokenTtl = positiveInteger("accessTokenTtl", options.accessTokenTtl ?? defaults.accessTokenTtl)
    const refreshTokenTtl = positiveInteger("refreshTokenTtl", options.refreshTokenTtl ?? defaults.refreshTokenTtl)
    const resources: Record<string, ResourceServer> = {
      [Resources.demoApi]: { scope: "api.read api.write" },
      [Resources.otherApi]: { scope: "other.read" },
      ...options.resources
    }
    const resourceScopes = new Map<string, ReadonlySet<string>>()
    for (const [resource, server] of Object.entries(resources)) {
      if (server.accessTokenTtl !== undefined) {
        positiveInteger(`resources["${resource}"].accessTokenTtl`, server.accessTokenTtl)
      }
      resourceScopes.set(resource, new Set(server.scope.split(" ").filter(Boolean)))
    }

    const [oidc, keys] = yield* Effect.promise(() => Promise.all([loadOidcProvider(), signingKeys()]))

    const controller = new AbortController()
    let handler: Http.RequestListener = (_req, res) => {
      res.statusCode = 503
      res.end()
    }
    const server = yield* Effect.acquireRelease(
      Effect.sync(() => Http.createServer({ keepAliveTimeout }, (req, res) => handler(req, res))),
      (server) =>
        Effect.suspend(() => {
          controller.abort()
          return close(server)
        })
    )
    const port = yield* listen(server, options.port ?? defaults.port).pipe(
      Effect.orDieWith((cause) =>
        new Error(`dev-identity: cannot listen on 127.0.0.1:${options.port ?? defaults.port}: ${cause.message}`, {
          cause
        })
      )
    )
    const issuer = `http://127.0.0.1:${port}`

    // RFC 8705: the same provider behind an https listener that asks for a client certificate (any: a
    // self-signed one is checked against the client's registered keys, a CA-issued one against the test CA)
    const tls = testCertificates()
    const tlsServer = yield* Effect.acquireRelease(
      Effect.sync(() =>
        Https.createServer({
          cert: tls.server.certificate,
          key: tls.server.key,
          ca: [tls.ca],
          requestCert: true,
          rejectUnauthorized: false,
          keepAliveTimeout
        }, (req, res) => handler(req, res))
      ),
      (server) => close(server as unknown as Http.Server)
    )
    const tlsPort = yield* listen(tlsServer as unknown as Http.Server, 0).pipe(Effect.orDie)
    const mtlsOrigin = `https://127.0.0.1:${tlsPort}`
    // advertised in discovery (RFC 8705 §5): oidc-provider's default routes, on the https listener
    const mtlsEndpointAliases = {
      token_endpoint: `${mtlsOrigin}/token`,
      revocation_endpoint: `${mtlsOrigin}/token/revocation`
    }

    const store = new MemoryStore()
    const tokenState = new TokenEndpointState()
    type Credentials = { readonly clientId: string; readonly clientSecret: string }
    const webClient = ({ clientId, clientSecret }: Credentials, method: string, name: string) => ({
      client_id: clientId,
      client_secret: clientSecret,
      client_name: name,
      application_type: "web",
      // client_credentials too: the app calls APIs on its own behalf with the same client
      grant_types: ["authorization_code", "refresh_token", "client_credentials", TOKEN_EXCHANGE],
      response_types: ["code"],
      // any loopback URI is accepted as well, see redirectUriAllowed below
      redirect_uris: ["http://127.0.0.1/callback", "http://localhost/callback", ...(options.redirectUris ?? [])],
      post_logout_redirect_uris: ["http://127.0.0.1/", ...(options.postLogoutRedirectUris ?? [])],
      token_endpoint_auth_method: method,
      scope: WEB_SCOPE
    })
    const machineClient = ({ clientId, clientSecret }: Credentials, method: string) => ({
      client_id: clientId,
      client_secret: clientSecret,
      client_name: clientId,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: method,
      scope: MACHINE_SCOPE
    })
    const clientKeys = makeClientKeys()
    // clients whose access tokens must be DPoP-bound: a token request without a proof is refused
    const dpopBound = { dpop_bound_access_tokens: true }
    const clients: Array<ClientMetadata> = [
      machineClient(Clients.machineBasic, "client_secret_basic"),
      machineClient(Clients.machinePost, "client_secret_post"),
      machineClient(Clients.machineSecretJwt, "client_secret_jwt"),
      {
        ...machineClient({ clientId: Clients.machineTls.clientId, clientSecret: "" }, "tls_client_auth"),
        client_secret: undefined,
        tls_client_auth_subject_dn: "CN=machine-tls",
        tls_client_certificate_bound_access_tokens: true
      },
      {
        ...machineClient(
          { clientId: Clients.machineSelfSignedTls.clientId, clientSecret: "" },
          "self_signed_tls_client_auth"
        ),
        client_secret: undefined,
        jwks: { keys: [selfSignedJwk(tls.selfSigned.certificate)] },
        tls_client_certificate_bound_access_tokens: true
      },
      {
        ...webClient({ clientId: Clients.webTls.clientId, clientSecret: "" }, "tls_client_auth", "Web app, mTLS (dev)"),
        client_secret: undefined,
        tls_client_auth_subject_dn: "CN=machine-tls",
        tls_client_certificate_bound_access_tokens: true
      },
      {
        ...machineClient({ clientId: Clients.machinePrivateKeyJwt.clientId, clientSecret: "" }, "private_key_jwt"),
        client_secret: undefined,
        jwks: { keys: clientKeys.publicJwks }
      },
      {
        ...webClient(Clients.web, "client_secret_basic", "Web app (dev)"),
        ...(options.backchannelLogoutUri === undefined ? {} : {
          backchannel_logout_uri: options.backchannelLogoutUri,
          backchannel_logout_session_required: true
        })
      },
      webClient(Clients.webPost, "client_secret_post", "Web app, client_secret_post (dev)"),
      { ...machineClient(Clients.machineDpop, "client_secret_basic"), ...dpopBound },
      { ...webClient(Clients.webDpop, "client_secret_basic", "Web app, DPoP (dev)"), ...dpopBound },
      {
        ...webClient(
          { clientId: Clients.webPrivateKeyJwt.clientId, clientSecret: "" },
          "private_key_jwt",
          "Web app, private_key_jwt (dev)"
        ),
        client_secret: undefined,
        jwks: { keys: clientKeys.publicJwks }
      },
      {
        // a public client: its refresh tokens are bound to the DPoP key of the code exchange (RFC 9449 §5)
        ...withoutSecret(
          webClient({ clientId: Clients.publicDpop.clientId, clientSecret: "" }, "none", "Public app, DPoP (dev)")
        ),
        grant_types: ["authorization_code", "refresh_token"],
        ...dpopBound
      },
      ...(options.clients ?? [])
    ]

    // oidc-provider only accepts its own (OpenID) scopes in a client's `scope` metadata; the API scopes a client
    // may ask for are kept here and applied when its resource server info is resolved.
    const statics = new Set<string>(OIDC_SCOPES)
    const clientApiScopes = new Map<string, ReadonlySet<string>>()
    const registered = clients.map((metadata) => {
      if (typeof metadata.scope !== "string") return metadata
      const scopes = metadata.scope.split(" ").filter(Boolean)
      clientApiScopes.set(metadata.client_id, new Set(scopes.filter((scope) => !statics.has(scope))))
      const oidcScopes = scopes.filter((scope) => statics.has(scope))
      const { scope: _, ...rest } = metadata
      return oidcScopes.length === 0 ? rest : { ...rest, scope: oidcScopes.join(" ") }
    })

    const resourceServerInfo = (resource: string, clientId: string) => {
      const info = resources[resource]
      if (info === undefined) throw new oidc.errors.InvalidTarget(`unknown resource indicator ${resource}`)
      const allowed = clientApiScopes.get(clientId)
      return {
        scope: allowed === undefined ? info.scope : info.scope.split(" ").filter((s) => allowed.has(s)).join(" "),
        audience: resource,
        accessTokenFormat: "jwt" as const,
        accessTokenTTL: info.accessTokenTtl ?? accessTokenTtl,
        jwt: { sign: { alg: "RS256" as const } }
      }
    }

    let dpopNonceRequired = options.requireDPoPNonce ?? false

    const configuration: Configuration = {
      adapter: makeAdapterFactory(store),
      clients: registered as Configuration["clients"],
      clockTolerance: 0,
      clientAuthMethods: [
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
        "none"
      ],
      // the access tokens are JWTs for APIs, so the ID token is where a relying party finds name and email
      conformIdTokenClaims: false,
      cookies: { keys: [Crypto.randomBytes(32).toString("base64url")] },
      claims: {
        acr: null,
        auth_time: null,
        iss: null,
        sid: null,
        openid: ["sub"],
        profile: ["name"],
        email: ["email", "email_verified"]
      },
      scopes: [...OIDC_SCOPES],
      discovery: { mtls_endpoint_aliases: mtlsEndpointAliases },
      jwks: keys.privateJwks as Configuration["jwks"],
      enabledJWA: {
        dPoPSigningAlgValues: ["ES256", "ES384", "ES512", "PS256", "RS256", "Ed25519", "EdDSA"]
      },
      findAccount: (_ctx, sub) =>
        accountIdPattern.test(sub) ?
          {
            accountId: sub,
            claims: () => ({ sub, name: sub, email: `${sub}@example.test`, email_verified: true })
          } :
          undefined,
      // oidc-provider guards its own requests (back-channel logout) against special-use addresses, loopback
      // included; the relying parties of this development provider are on loopback, so those go out unguarded
      fetch: (url, options) => {
        if (options === undefined || url instanceof Request || !isLoopback(String(url))) return fetch(url, options)
        const { dispatcher: _, ...rest } = options as RequestInit & { readonly dispatcher?: unknown }
        return fetch(url, rest)
      },
      features: {
        mTLS: {
          enabled: true,
          certificateBoundAccessTokens: true,
          tlsClientAuth: true,
          selfSignedTlsClientAuth: true,
          getCertificate: (ctx) => peerCertificate(ctx.req),
          certificateAuthorized: (ctx) => (ctx.req.socket as Tls.TLSSocket).authorized === true,
          certificateSubjectMatches: (ctx, property, expected) =>
            property === "tls_client_auth_subject_dn" && peerCertificate(ctx.req)?.subject === expected
        },
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        dPoP: {
          enabled: true,
          // nonces are always offered (a proof with a stale iat is answered with one); demanded on request
          nonceSecret: Crypto.randomBytes(32),
          requireNonce: () => dpopNonceRequired
        },
        introspection: {
          enabled: true,
          allowedPolicy: (_ctx, client, token) =>
            client.clientAuthMethod !== "none" || token.clientId === client.clientId
        },
        revocation: {
          enabled: true,
          allowedPolicy: (_ctx, client, token) => {
            if (token.clientId === client.clientId) return true
            if (client.clientAuthMethod === "none") return false
            throw new oidc.errors.InvalidRequest("client is not authorized to revoke the presented token")
          }
        },
        // a logout token to the clients of a provider session when it ends (only the web client registers a URI)
        backchannelLogout: { enabled: true },
        rpInitiatedLogout: {
          enabled: true,
          logoutSource: (ctx, form) => {
            ctx.type = "html"
            ctx.body = Pages.logoutPage(form, ctx.host)
          },
          postLogoutSuccessSource: (ctx) => {
            ctx.type = "html"
            ctx.body = Pages.signedOutPage(ctx.oidc.client?.clientName ?? ctx.oidc.client?.clientId)
          }
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: (ctx, client, oneOf) => {
            if (oneOf !== undefined && oneOf.length > 0) return oneOf.includes(DEMO_API) ? DEMO_API : oneOf[0]!
            // An authorization request without resource is granted every resource it asked scopes of, so that
            // the relying party can later get per-resource tokens with its refresh token (RFC 8707).
            const route = ctx.oidc.route
            if (
              (route === "authorization" || route === "pushed_authorization_request") &&
              client.grantTypeAllowed("authorization_code")
            ) {
              const requested = String(ctx.oidc.params?.scope ?? "").split(" ")
              const matching = [...resourceScopes].filter(([, scopes]) => requested.some((s) => scopes.has(s)))
              if (matching.length > 1) return matching.map(([resource]) => resource)
            }
            return DEMO_API
          },
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, resource, client) => resourceServerInfo(resource, client.clientId)
        }
      },
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      issueRefreshToken: (_ctx, client) => client.grantTypeAllowed("refresh_token"),
      rotateRefreshToken: options.rotateRefreshTokens ?? true,
      pkce: { required: () => true },
      clientBasedCORS: (_ctx, origin) => isLoopback(origin),
      renderError: (ctx, out) => {
        ctx.type = "html"
        ctx.body = Pages.errorPage("Something went wrong", { ...out })
      },
      ttl: {
        AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
        ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
        AuthorizationCode: 60,
        IdToken: 3600,
        RefreshToken: refreshTokenTtl,
        Interaction: 600,
        Session: Math.max(refreshTokenTtl, 14 * 86400),
        Grant: Math.max(refreshTokenTtl, 14 * 86400),
        BackchannelAuthenticationRequest: 600,
        DeviceCode: 600,
        PreAuthorizedCode: 600
      }
    }

    const provider: Provider = new oidc.Provider(issuer, configuration)
    for (const [endpoint, route] of [["token_endpoint", "token"], ["revocation_endpoint", "revocation"]] as const) {
      if (new URL(mtlsEndpointAliases[endpoint]).pathname !== new URL(provider.urlFor(route)).pathname) {
        return yield* Effect.dieMessage(`dev-identity: the mTLS alias of ${endpoint} is not the provider's route`)
      }
    }
    provider.silent = !debug()
    if (debug()) {
      const events: NodeJS.EventEmitter = provider
      for (
        const event of ["server_error", "grant.error", "authorization.error", "end_session.error", "backchannel.error"]
      ) {
        events.on(event, (_ctx: unknown, error: unknown) => console.error(`dev-identity ${event}:`, error))
      }
    }

    // Examples and tests run relying parties on random ports: any loopback redirect URI is accepted for clients
    // that use the code flow. Only acceptable because this provider is bound to 127.0.0.1 for development.
    const clientPrototype = provider.Client.prototype
    const redirectUriAllowed = clientPrototype.redirectUriAllowed
    const postLogoutRedirectUriAllowed = clientPrototype.postLogoutRedirectUriAllowed
    clientPrototype.redirectUriAllowed = function(this: typeof clientPrototype, value: string) {
      return redirectUriAllowed.call(this, value) ||
        (this.grantTypeAllowed("authorization_code") && isLoopback(value))
    }
    clientPrototype.postLogoutRedirectUriAllowed = function(this: typeof clientPrototype, value: string) {
      return postLogoutRedirectUriAllowed.call(this, value) ||
        (this.grantTypeAllowed("authorization_code") && isLoopback(value))
    }

    const path = (name: string) => new URL(provider.urlFor(name)).pathname
    provider.use(tokenEndpointMiddleware({ tokenPath: path("token"), state: tokenState, signal: controller.signal }))
    provider.use(interactionsMiddleware({
      provider,
      oidcScopes: new Set(OIDC_SCOPES),
      resourceScopes: (resource) => resourceScopes.get(resource)
    }))
    handler = provider.callback()

    const introspectionEndpoint = provider.urlFor("introspection")
    const localKeys = Jose.createLocalJWKSet({ keys: [...keys.publicJwks.keys] })
    const introspectLocally = (token: string) =>
      Jose.jwtVerify(token, localKeys, { issuer, clockTolerance: 0 }).then(
        ({ payload }) => ({ ...payload, active: true, token_type: "Bearer" }),
        () => ({ active: false })
      )

    // Token exchange (RFC 8693): an access token this provider issued to the requesting client, still active, is
    // exchanged for a token for another resource (or audience) and scope, as the same user.
    const verifyAccessToken = async (token: unknown, what: string) => {
      if (typeof token !== "string" || token.length === 0) throw new oidc.errors.InvalidRequest(`${what} is missing`)
      try {
        return (await Jose.jwtVerify(token, localKeys, { issuer, clockTolerance: 0, typ: "at+jwt" })).payload
      } catch {
        throw new oidc.errors.InvalidGrant(`${what} is not an active access token issued by this provider`)
      }
    }
    provider.registerGrantType(
      TOKEN_EXCHANGE,
      async (ctx) => {
        const params = ctx.oidc.params as Record<string, string | undefined>
        const client = ctx.oidc.client!
        if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
          throw new oidc.errors.InvalidRequest(`subject_token_type must be ${ACCESS_TOKEN_TYPE}`)
        }
        const subject = await verifyAccessToken(params.subject_token, "subject_token")
        if (subject.client_id !== client.clientId) {
          throw new oidc.errors.InvalidGrant("subject_token was not issued to this client")
        }
        let act: Record<string, unknown> | undefined
        if (params.actor_token !== undefined) {
          if (params.actor_token_type !== ACCESS_TOKEN_TYPE) {
            throw new oidc.errors.InvalidRequest(`actor_token_type must be ${ACCESS_TOKEN_TYPE}`)
          }
          const actor = await verifyAccessToken(params.actor_token, "actor_token")
          act = { sub: actor.sub ?? actor.client_id }
        }
        const resource = params.resource ?? params.audience ?? DEMO_API
        const info = resourceServerInfo(resource, client.clientId)
        const allowed = new Set(info.scope.split(" ").filter(Boolean))
        const requested = params.scope === undefined ? [...allowed] : params.scope.split(" ").filter(Boolean)
        const refused = requested.filter((scope) => !allowed.has(scope))
        if (refused.length > 0) {
          throw new oidc.errors.InvalidScope(`scope not allowed for ${resource}`, refused.join(" "))
        }
        const now = Math.floor(Date.now() / 1000)
        const scope = requested.join(" ")
        // bound to the certificate the request presented, as the provider's own grants bind (RFC 8705 §3)
        const certificate = client.tlsClientCertificateBoundAccessTokens ? peerCertificate(ctx.req) : undefined
        const accessToken = await new Jose.SignJWT({
          client_id: client.clientId,
          scope,
          jti: Crypto.randomUUID(),
          ...(act === undefined ? {} : { act }),
          ...(certificate === undefined ? {} : {
            cnf: { "x5t#S256": Crypto.createHash("sha256").update(certificate.raw).digest("base64url") }
          })
        })
          .setProtectedHeader({ alg: "RS256", kid: keys.rs256.kid, typ: "at+jwt" })
          .setIssuer(issuer)
          .setSubject(String(subject.sub))
          .setAudience(resource)
          .setIssuedAt(now)
          .setExpirationTime(now + info.accessTokenTTL)
          .sign(keys.rs256.privateKey)
        ctx.body = {
          access_token: accessToken,
          issued_token_type: ACCESS_TOKEN_TYPE,
          token_type: "Bearer",
          expires_in: info.accessTokenTTL,
          scope
        }
      },
      [
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "audience",
        "resource",
        "scope",
        "requested_token_type"
      ]
    )

    if (debug()) console.error(`dev-identity: OpenID Provider listening at ${issuer}`)

    const service: IdentityProvider["Type"] = {
      issuer,
      clientPrivateKeys: { pem: clientKeys.pem, jwk: clientKeys.jwk, ed25519: clientKeys.ed25519 },
      mtlsTokenEndpoint: mtlsEndpointAliases.token_endpoint,
      mtlsRevocationEndpoint: mtlsEndpointAliases.revocation_endpoint,
      testCertificates: tls,
      discoveryUrl: `${issuer}/.well-known/openid-configuration`,
      tokenEndpoint: provider.urlFor("token"),
      revocationEndpoint: provider.urlFor("revocation"),
      introspectionEndpoint,
      jwksUri: provider.urlFor("jwks"),
      authorizationEndpoint: provider.urlFor("authorization"),
      endSessionEndpoint: provider.urlFor("end_session"),
      tokenRequests: (filter) => Effect.sync(() => tokenState.count(filter)),
      resetCounters: Effect.sync(() => tokenState.reset()),
      requireDPoPNonce: (required) =>
        Effect.sync(() => {
          dpopNonceRequired = required
        }),
      setTokenFault: (fault: TokenEndpointFault | undefined, faultOptions) =>
        Effect.sync(() => tokenState.setFault(fault, faultOptions?.times)),
      introspect: (token) =>
        Effect.tryPromise(async (signal) => {
          const response = await fetch(introspectionEndpoint, {
            method: "POST",
            headers: {
              authorization: basic(Clients.web.clientId, Clients.web.clientSecret),
              "content-type": "application/x-www-form-urlencoded",
              accept: "application/json"
            },
            body: new URLSearchParams({ token }).toString(),
            signal
          })
          const body = await response.json() as Record<string, unknown>
          if (response.ok && typeof body.active === "boolean") {
            return body as { readonly active: boolean } & Record<string, unknown>
          }
          if (body.error === "unsupported_token_type") return introspectLocally(token)
          throw new Error(`introspection answered ${response.status} ${String(body.error)}`)
        }).pipe(Effect.orDie),
      authorize: (authorizationUrl, account) => authorize(issuer, authorizationUrl, account),
      mintAccessToken: (mint: MintOptions = {}) =>
        Effect.promise(() => {
          const key = mint.alg === "ES256" ? keys.es256 : keys.rs256
          const now = Math.floor(Date.now() / 1000)
          return new Jose.SignJWT({
            client_id: mint.clientId ?? Clients.web.clientId,
            scope: mint.scope ?? "api.read api.write",
            jti: Crypto.randomUUID()
          })
            .setProtectedHeader({ alg: mint.alg ?? "RS256", kid: key.kid, typ: "at+jwt" })
            .setIssuer(issuer)
            .setSubject(mint.sub ?? "alice")
            .setAudience(mint.audience ?? DEMO_API)
            .setIssuedAt(now)
            .setExpirationTime(now + (mint.expiresIn ?? accessTokenTtl))
            .sign(key.privateKey)
        }),
      mintLogoutToken: (mint: MintLogoutOptions) =>
        Effect.promise(() => {
          const now = Math.floor(Date.now() / 1000)
          const jwt = new Jose.SignJWT({
            events: { "http://schemas.openid.net/event/backchannel-logout": {} },
            jti: Crypto.randomUUID(),
            ...(mint.sid === undefined ? {} : { sid: mint.sid })
          })
            .setProtectedHeader({ alg: "RS256", kid: keys.rs256.kid, typ: "logout+jwt" })
            .setIssuer(issuer)
            .setAudience(mint.audience ?? Clients.web.clientId)
            .setIssuedAt(now)
            .setExpirationTime(now + 120)
          return (mint.sub === undefined ? jwt : jwt.setSubject(mint.sub)).sign(keys.rs256.privateKey)
        })
    }
    return service
  })
