/**
 * The realtime example on two instances behind a round-robin proxy (`npm run realtime -- --instances 2`). The
 * instances share everything through Redis: sessions (`RedisSessionStore`), user tokens (`RedisStore`, with a near
 * cache in front on each instance), the renewal lock (`RedisTokenLock`) and the bus (`RedisClusterEvents`) that
 * invalidates the near caches and closes a session's websockets on every instance when it ends. Each instance has
 * its own Redis connection (and a subscriber duplicated from it); they share the session secret and the token
 * encryption key.
 *
 * The provider sends back-channel logout to the proxy, which hands it to either instance: either can end the
 * session everywhere.
 *
 * `dpop` and `privateKeyJwt` (`DPOP=true`, `PRIVATE_KEY_JWT=true`) switch both instances to the client the single
 * instance uses for them (`App.registeredClient`): with DPoP, the session's proof key is stored, encrypted, with
 * its tokens in Redis, so either instance refreshes them and calls the API with proofs of that key.
 */
import * as SessionStore from "@effect-atm/core/SessionStore"
import * as TokenEncryption from "@effect-atm/core/TokenEncryption"
import * as UserTokenStore from "@effect-atm/core/UserTokenStore"
import * as DemoApi from "@effect-atm/dev-identity/DemoApi"
import * as IdentityProvider from "@effect-atm/dev-identity/IdentityProvider"
import * as OidcLogin from "@effect-atm/oidc-login/OidcLogin"
import * as RedisClusterEvents from "@effect-atm/store-redis/RedisClusterEvents"
import * as RedisConnection from "@effect-atm/store-redis/RedisConnection"
import * as RedisSessionStore from "@effect-atm/store-redis/RedisSessionStore"
import * as RedisStore from "@effect-atm/store-redis/RedisStore"
import * as RedisTokenLock from "@effect-atm/store-redis/RedisTokenLock"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Crypto from "node:crypto"
import { createServer } from "node:http"
import * as App from "./App.js"
import * as Proxy from "./Proxy.js"
import { layerObserved } from "./TokenActivity.js"

/** `App.Options` (the port is the proxy's here), and where the instances share their state. */
export interface Options
  extends Pick<App.Options, "accessTokenTtl" | "refreshTokenTtl" | "interval" | "dpop" | "privateKeyJwt" | "websocket">
{
  /** The proxy's port on 127.0.0.1 (what the browser opens); 0 picks a free one. Default: 0. */
  readonly port?: number | undefined
  /** Default: `redis://127.0.0.1:6379`. */
  readonly redisUrl?: string | undefined
  /** Prefix of every Redis key and of the bus channel. Default: a fresh one per run. */
  readonly prefix?: string | undefined
}

export interface Instance {
  readonly name: string
  /** The instance's own address (the browser goes through the proxy). */
  readonly url: string
  readonly login: OidcLogin.OidcLogin["Type"]
  /** The instance's user token store (the near cache over Redis). */
  readonly tokenStore: UserTokenStore.UserTokenStore["Type"]
  readonly sessionStore: SessionStore.SessionStore["Type"]
}

export class RealtimeCluster extends Context.Tag("example-realtime/RealtimeCluster")<RealtimeCluster, {
  /** The proxy: what the browser opens. */
  readonly url: string
  readonly provider: IdentityProvider.IdentityProvider["Type"]
  readonly demoApi: DemoApi.DemoApi["Type"]
  readonly instances: ReadonlyArray<Instance>
  /** Where the proxy sent each request and websocket. */
  readonly routed: ReadonlyArray<Proxy.Routed>
  readonly prefix: string
}>() {}

/** What the instances share: the addresses they serve and call, the Redis keys, the secrets. */
export interface Shared {
  /** The proxy's address: the application's, for cookies and redirects. */
  readonly url: string
  readonly redisUrl: string
  readonly prefix: string
  readonly secret: Redacted.Redacted<string>
  readonly key: Redacted.Redacted<string>
  readonly interval: Duration.Duration
  readonly issuer: string
  readonly demoApiUrl: string
  /** How long a request to the token endpoint may take. Default: `TokenEndpoint`'s (10 seconds). */
  readonly tokenRequestTimeout?: Duration.Duration | undefined
  /** DPoP-bound user tokens (`App.Options.dpop`). Default: false. */
  readonly dpop?: boolean | undefined
  /** With `private_key_jwt`: the client's private key (the provider's `clientPrivateKeys.pem`). */
  readonly clientPrivateKey?: Redacted.Redacted<string> | undefined
  readonly websocket?: OidcLogin.WebsocketOptions | undefined
}

/**
 * One instance: its own HTTP server, Redis connection, bus subscription and near cache. It reaches the provider
 * and the demo API by their addresses only, so it runs as well in a process of its own (see
 * `test/browser/realtimeInstance.worker.ts`).
 */
export const instance = (name: string, options: Shared) =>
  Effect.gen(function*() {
    const { prefix } = options

    const ConnectionLive = Layer.merge(
      RedisConnection.layer({ url: options.redisUrl }),
      TokenEncryption.layer({ key: { key: options.key } })
    )
    const StoresLive = Layer.mergeAll(
      // the near cache in front of the shared store: a get costs a memory read; writes elsewhere invalidate it
      layerObserved(
        RedisStore.layerUserTokenStore({ prefix, timeToLive: "12 hours" }).pipe(
          UserTokenStore.withNearCache()
        )
      ),
      RedisStore.layerAccessTokenStore({ prefix }),
      RedisTokenLock.layer({ prefix }),
      RedisSessionStore.layer({ prefix })
    ).pipe(
      Layer.provideMerge(RedisClusterEvents.layer({ prefix })),
      Layer.provide(ConnectionLive)
    )
    // the single instance's wiring, over the shared stores
    const ServicesLive = App.layerServices({
      client: App.registeredClient(options.issuer, { dpop: options.dpop, privateKey: options.clientPrivateKey }),
      // cookies and redirects are the proxy's: the browser never sees an instance's own address
      baseUrl: options.url,
      demoApiUrl: options.demoApiUrl,
      // the same secret on both instances: either verifies the other's cookies
      sessionSecret: options.secret,
      websocket: options.websocket,
      tokenRequestTimeout: options.tokenRequestTimeout
    }).pipe(Layer.provideMerge(StoresLive))
    const ServerLive = NodeHttpServer.layer(() => createServer(), { port: 0, host: "127.0.0.1" })
    const context = yield* Layer.build(
      Layer.mergeAll(
        HttpServer.serve(
          App.routes(options.interval, options.demoApiUrl, name).pipe(App.securityHeaders(options.issuer))
        ),
        ServicesLive,
        ServerLive
      ).pipe(Layer.provide(ServicesLive), Layer.provide(ServerLive))
    )
    const server = Context.get(context, HttpServer.HttpServer)
    const port = (server.address as HttpServer.TcpAddress).port
    return {
      port,
      instance: {
        name,
        url: `http://127.0.0.1:${port}`,
        login: Context.get(context, OidcLogin.OidcLogin),
        tokenStore: Context.get(context, UserTokenStore.UserTokenStore),
        sessionStore: Context.get(context, SessionStore.SessionStore)
      }
    }
  })

export const make = (options: Options = {}): Effect.Effect<RealtimeCluster["Type"], unknown, Scope.Scope> =>
  Effect.gen(function*() {
    // the proxy first: its address is the application's, which the provider needs for back-channel logout
    const proxy = yield* Proxy.make(options.port ?? 0)
    const url = `http://127.0.0.1:${proxy.port}`
    const dev = yield* Layer.build(
      DemoApi.layer().pipe(Layer.provideMerge(IdentityProvider.layer({
        accessTokenTtl: options.accessTokenTtl ?? 20,
        refreshTokenTtl: options.refreshTokenTtl ?? 3600,
        backchannelLogoutUri: `${url}/auth/backchannel-logout`
      })))
    )
    const provider = Context.get(dev, IdentityProvider.IdentityProvider)
    const shared: Shared = {
      url,
      redisUrl: options.redisUrl ?? "redis://127.0.0.1:6379",
      prefix: options.prefix ?? `realtime:${Crypto.randomBytes(6).toString("hex")}:`,
      secret: Redacted.make(Crypto.randomBytes(32).toString("base64url")),
      key: Redacted.make(Crypto.randomBytes(32).toString("base64")),
      interval: Duration.decode(options.interval ?? Duration.seconds(2)),
      issuer: provider.issuer,
      demoApiUrl: Context.get(dev, DemoApi.DemoApi).url,
      dpop: options.dpop,
      clientPrivateKey: options.privateKeyJwt ? Redacted.make(provider.clientPrivateKeys.pem) : undefined,
      websocket: options.websocket
    }
    const a = yield* instance("A", shared)
    const b = yield* instance("B", shared)
    proxy.setTargets([{ name: "A", port: a.port }, { name: "B", port: b.port }])
    return {
      url,
      provider,
      demoApi: Context.get(dev, DemoApi.DemoApi),
      instances: [a.instance, b.instance],
      routed: proxy.routed,
      prefix: shared.prefix
    }
  })

export const layer = (options?: Options): Layer.Layer<RealtimeCluster, unknown> =>
  Layer.scoped(RealtimeCluster, make(options))
