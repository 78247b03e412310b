// A consumer of the published packages, in plain JavaScript run by node (no TypeScript tooling): starts the embedded
// OpenID Provider and demo API of @effect-atm/dev-identity, calls the API through a named client-credentials HTTP
// client, prints the API's answer and exits 0. scripts/consumer-test.sh copies it into a project where the packed
// tarballs are installed; it does not run inside the workspace.
import { AccessTokenHttpClient, AccessTokenManagement, AccessTokenStore, TokenLock } from "@effect-atm/core"
import { DemoApi, IdentityProvider } from "@effect-atm/dev-identity"
import { HttpClientResponse } from "@effect/platform"
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Context, Effect, Layer, Redacted, Schema } from "effect"

class DemoApiClient extends Context.Tag("consumer/DemoApiClient")() {}

const Echo = Schema.Struct({ sub: Schema.String, client_id: Schema.String, scope: Schema.optional(Schema.String) })

const Live = Layer.unwrapEffect(Effect.gen(function*() {
  const provider = yield* IdentityProvider.IdentityProvider
  const api = yield* DemoApi.DemoApi
  return AccessTokenHttpClient.layerClientCredentials(DemoApiClient, { client: "consumer", baseUrl: api.url }).pipe(
    Layer.provide(AccessTokenManagement.layerClientCredentials({
      clients: {
        consumer: {
          issuer: provider.issuer,
          clientId: IdentityProvider.Clients.machineBasic.clientId,
          clientSecret: Redacted.make(IdentityProvider.Clients.machineBasic.clientSecret),
          scope: "api.read"
        }
      }
    })),
    // one process: tokens in memory, renewals exclusive within the process
    Layer.provide([AccessTokenStore.layerMemory(), TokenLock.layerMemory])
  )
})).pipe(
  Layer.provide(DemoApi.layer()),
  Layer.provide(IdentityProvider.layer()),
  Layer.provide(NodeHttpClient.layerUndici)
)

const callApi = Effect.gen(function*() {
  const client = yield* DemoApiClient
  const echo = yield* client.get("/data").pipe(
    Effect.flatMap(HttpClientResponse.filterStatusOk),
    Effect.flatMap(HttpClientResponse.schemaBodyJson(Echo)),
    Effect.scoped
  )
  console.log(`demo API answered: subject=${echo.sub} client=${echo.client_id} scope=${echo.scope ?? "-"}`)
})

/** Internals are not exported: the exports map refuses the deep import. */
const internalsRefused = Effect.promise(() =>
  import("@effect-atm/core/internal/tokenCache").then(() => "imported", (error) => error.code)
).pipe(Effect.flatMap((code) =>
  code === "ERR_PACKAGE_PATH_NOT_EXPORTED"
    ? Effect.sync(() => console.log("@effect-atm/core/internal/tokenCache: refused (ERR_PACKAGE_PATH_NOT_EXPORTED)"))
    : Effect.dieMessage(`@effect-atm/core/internal/tokenCache: expected ERR_PACKAGE_PATH_NOT_EXPORTED, got ${code}`)
))

const main = Effect.andThen(callApi, internalsRefused)

main.pipe(Effect.provide(Live), NodeRuntime.runMain)
