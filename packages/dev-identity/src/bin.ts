/**
 * Runs the embedded OpenID Provider and the demo API until interrupted:
 *
 * ```sh
 * npx tsx packages/dev-identity/src/bin.ts [--port N] [--api-port N] [--access-token-ttl S] [--refresh-token-ttl S]
 * ```
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as DemoApi from "./DemoApi.js"
import * as IdentityProvider from "./IdentityProvider.js"

const usage = `Usage: dev-identity [--port N] [--api-port N] [--access-token-ttl S] [--refresh-token-ttl S]

  --port N               OpenID Provider port on 127.0.0.1 (default: a free port)
  --api-port N           demo API port on 127.0.0.1 (default: a free port)
  --access-token-ttl S   access token lifetime in seconds (default 300)
  --refresh-token-ttl S  refresh token lifetime in seconds (default 86400)
`

const parseArgs = (argv: ReadonlyArray<string>) => {
  const flags = new Map<string, number>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") return undefined
    const [name, inline] = arg.split("=", 2) as [string, string | undefined]
    if (!["--port", "--api-port", "--access-token-ttl", "--refresh-token-ttl"].includes(name)) {
      throw new Error(`unknown option ${arg}\n\n${usage}`)
    }
    const raw = inline ?? argv[++i]
    const value = Number(raw)
    if (raw === undefined || !Number.isSafeInteger(value) || value < 0) {
      throw new Error(`${name} expects a whole number, got ${raw ?? "nothing"}\n\n${usage}`)
    }
    flags.set(name, value)
  }
  return {
    port: flags.get("--port"),
    apiPort: flags.get("--api-port"),
    accessTokenTtl: flags.get("--access-token-ttl"),
    refreshTokenTtl: flags.get("--refresh-token-ttl")
  }
}

const program = Effect.gen(function*() {
  const args = yield* Effect.try({
    try: () => parseArgs(process.argv.slice(2)),
    catch: (error) => (error as Error).message
  })
  if (args === undefined) return yield* Console.log(usage)

  const DevIdentity = DemoApi.layer({ port: args.apiPort }).pipe(
    Layer.provideMerge(IdentityProvider.layer({
      port: args.port,
      accessTokenTtl: args.accessTokenTtl,
      refreshTokenTtl: args.refreshTokenTtl
    }))
  )

  yield* Effect.gen(function*() {
    const op = yield* IdentityProvider.IdentityProvider
    const api = yield* DemoApi.DemoApi
    const { Clients, Resources } = IdentityProvider
    yield* Console.log(
      [
        "dev-identity is running (Ctrl+C to stop)",
        "",
        "OpenID Provider",
        `  issuer                 ${op.issuer}`,
        `  discovery              ${op.discoveryUrl}`,
        `  authorization_endpoint ${op.authorizationEndpoint}`,
        `  token_endpoint         ${op.tokenEndpoint}`,
        `  introspection_endpoint ${op.introspectionEndpoint}`,
        `  revocation_endpoint    ${op.revocationEndpoint}`,
        `  end_session_endpoint   ${op.endSessionEndpoint}`,
        `  jwks_uri               ${op.jwksUri}`,
        "",
        "Clients (client_id / client_secret)",
        `  ${Clients.machineBasic.clientId} / ${Clients.machineBasic.clientSecret}   client_credentials, client_secret_basic`,
        `  ${Clients.machinePost.clientId} / ${Clients.machinePost.clientSecret}     client_credentials, client_secret_post`,
        `  ${Clients.web.clientId} / ${Clients.web.clientSecret}                       code + PKCE, refresh_token, client_secret_basic`,
        `  ${Clients.webPost.clientId} / ${Clients.webPost.clientSecret}             code + PKCE, refresh_token, client_secret_post`,
        `  ${Clients.machineDpop.clientId} / ${Clients.machineDpop.clientSecret}     client_credentials, DPoP-bound tokens only`,
        `  ${Clients.webDpop.clientId} / ${Clients.webDpop.clientSecret}             code + PKCE, refresh_token, DPoP-bound tokens only`,
        `  ${Clients.publicDpop.clientId} (public)                 code + PKCE, refresh_token, DPoP-bound tokens only`,
        "  redirect URIs: any http://127.0.0.1:<port>/... or http://localhost:<port>/...",
        "",
        "Resources",
        `  ${Resources.demoApi}   scopes api.read api.write (default)`,
        `  ${Resources.otherApi}  scope other.read`,
        "",
        "Users: any username of letters, digits, . _ - with any non-empty password",
        "",
        "Demo API",
        `  url                    ${api.url}  (GET any path with Authorization: Bearer <access token>)`,
        `  audience               ${api.audience}`
      ].join("\n")
    )
    return yield* Effect.never
  }).pipe(Effect.provide(DevIdentity))
}).pipe(
  Effect.catchAll((message) => Console.error(message).pipe(Effect.zipRight(Effect.sync(() => process.exitCode = 2))))
)

NodeRuntime.runMain(program)
