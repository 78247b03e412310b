import {
  AccessTokenManagement,
  AccessTokenStore,
  ClientCredentialsTokens,
  type TokenEndpoint,
  TokenLock,
  UserTokenStore
} from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { createServer } from "node:net"
import type { AddressInfo } from "node:net"

/** The embedded provider and the demo API, started once per test file. */
export const identity = (options?: IdentityProvider.Options) =>
  DemoApi.layer().pipe(Layer.provideMerge(IdentityProvider.layer(options)), Layer.provideMerge(FetchHttpClient.layer))

const { machineBasic, machinePost } = IdentityProvider.Clients

/** Client-credentials clients against the embedded provider: the good ones and one of each kind of bad one. */
export const clientsFor = (provider: IdentityProvider.IdentityProvider["Type"]) => ({
  basic: {
    issuer: provider.issuer,
    clientId: machineBasic.clientId,
    clientSecret: Redacted.make(machineBasic.clientSecret),
    scope: "api.read"
  },
  post: {
    tokenEndpoint: provider.tokenEndpoint,
    clientId: machinePost.clientId,
    clientSecret: Redacted.make(machinePost.clientSecret),
    authentication: "client_secret_post" as const,
    scope: "api.read api.write"
  },
  wrongSecret: {
    issuer: provider.issuer,
    clientId: machineBasic.clientId,
    clientSecret: Redacted.make("not-the-secret-of-machine-basic")
  },
  unknownClient: {
    issuer: provider.issuer,
    clientId: "nobody-registered-this-client",
    clientSecret: Redacted.make("secret-of-an-unknown-client")
  }
})

/** A loopback port nothing listens on (it was free a moment ago): a provider that is down. */
export const unusedPort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** A fresh token manager (empty cache) over the file's provider. */
export const clientCredentials = (
  options?: Partial<ClientCredentialsTokens.Options> & { readonly endpoint?: TokenEndpoint.Options }
): Layer.Layer<
  ClientCredentialsTokens.ClientCredentialsTokens | TokenEndpoint.TokenEndpoint,
  never,
  IdentityProvider.IdentityProvider | HttpClient.HttpClient
> =>
  Layer.unwrapEffect(
    Effect.map(IdentityProvider.IdentityProvider, (provider) =>
      AccessTokenManagement.layerClientCredentialsMemory({
        ...options,
        clients: { ...clientsFor(provider), ...options?.clients },
        endpoint: { timeout: "2 seconds", ...options?.endpoint }
      }))
  ).pipe(Layer.orDie)

/**
 * A token of client `WORKER` configured by environment variables alone (`WORKER_ISSUER`, `WORKER_CLIENT_ID`, ...):
 * `ClientCredentialsTokens.layerConfig` built over in-memory stores, then one `get`; a bad value fails the layer.
 */
export const tokenFromEnv = (env: Record<string, string>) =>
  Layer.build(
    ClientCredentialsTokens.layerConfig(["WORKER"]).pipe(
      Layer.provide([AccessTokenStore.layerMemory(), TokenLock.layerMemory])
    )
  ).pipe(
    Effect.flatMap((context) => Context.get(context, ClientCredentialsTokens.ClientCredentialsTokens).get("WORKER")),
    Effect.scoped,
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))
  )

/** The claims of a JWT, without verifying it (the demo API verifies; tests only look). */
export const claims = (jwt: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8"))

/**
 * The server-side user token layers (with the app's own client-credentials client) over in-memory stores (or the
 * given user token store) and the process-local lock.
 */
export const userTokens = (
  options?: Partial<AccessTokenManagement.ServerOptions> & {
    readonly store?: Layer.Layer<UserTokenStore.UserTokenStore>
  }
) =>
  Layer.unwrapEffect(
    Effect.map(IdentityProvider.IdentityProvider, (provider) =>
      AccessTokenManagement.layerServer({
        client: {
          issuer: provider.issuer,
          clientId: IdentityProvider.Clients.web.clientId,
          clientSecret: Redacted.make(IdentityProvider.Clients.web.clientSecret)
        },
        resource: IdentityProvider.Resources.demoApi,
        endpoint: { timeout: "2 seconds" },
        ...options
      }))
  ).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        options?.store ?? UserTokenStore.layerMemory(),
        AccessTokenStore.layerMemory(),
        TokenLock.layerMemory
      )
    ),
    Layer.orDie
  )
