import * as Effect from "effect/Effect"
import type { TokenClientLike } from "../TokenClient.js"
import type { Discovery, TokenEndpoint } from "../TokenEndpoint.js"
import type { DiscoveryFailed } from "../TokenError.js"
import type { TokenLock } from "../TokenLock.js"

/**
 * The lock a manager's cache should use: none when the lock is the process-local one (the cache already excludes
 * within a process). Warns once, at start-up, when a store shared by several processes has no lock that spans them.
 *
 * @internal
 */
export const renewalLock = (
  manager: string,
  store: { readonly distributed?: boolean | undefined },
  lock: TokenLock["Type"]
): Effect.Effect<TokenLock["Type"] | undefined> =>
  Effect.as(
    store.distributed === true && !lock.distributed
      ? Effect.logWarning(
        `${manager}: the token store is shared by several processes, but the TokenLock is local to this one ` +
          "(TokenLock.layerMemory). Processes will renew the same token at once; with rotating refresh tokens the " +
          "provider revokes the grant. Provide a distributed lock (RedisTokenLock, SqlTokenLock)."
      )
      : Effect.void,
    lock.distributed ? lock : undefined
  )

/**
 * Discovers every client's provider metadata when the manager is built (`"eager"`, the default), so that an
 * unreachable, mismatched or malformed issuer fails the layer at start-up rather than a user's first refresh
 * minutes later. Clients with a `tokenEndpoint` need no discovery; one issuer is asked once (the endpoint caches).
 *
 * @internal
 */
export const discover = (
  endpoint: TokenEndpoint["Type"],
  discovery: Discovery | undefined,
  clients: Iterable<TokenClientLike>
): Effect.Effect<void, DiscoveryFailed> =>
  discovery === "lazy"
    ? Effect.void
    : Effect.forEach(
      Array.from(clients).filter((client) => client.tokenEndpoint === undefined),
      (client) => endpoint.metadata(client),
      { concurrency: "unbounded", discard: true }
    )
