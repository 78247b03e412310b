import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Crypto from "node:crypto"
import type { AccessToken, TokenRequestOptions } from "../AccessToken.js"
import { AccessTokenStore } from "../AccessTokenStore.js"
import { ClientCredentialsTokens } from "../ClientCredentialsTokens.js"
import * as CurrentUser from "../CurrentUser.js"
import * as TokenCache from "../TokenCache.js"
import * as TokenClient from "../TokenClient.js"
import { Grant, TokenEndpoint } from "../TokenEndpoint.js"
import {
  InvalidClientConfiguration,
  type TokenEndpointError,
  type TokenManagerClosed,
  type TokenStoreError,
  UnknownTokenClient
} from "../TokenError.js"
import type { Options, Target, TokenExchange } from "../TokenExchange.js"
import { TokenLock } from "../TokenLock.js"
import { UserTokens } from "../UserTokens.js"
import { renewalLock } from "./deployment.js"
import { exchangedTokenKey } from "./keys.js"
import * as validate from "./options.js"

interface Key {
  readonly name: string
  readonly target: Target
  readonly subject: AccessToken
  readonly params: TokenRequestOptions
  /** the key without the subject's generation: one live generation per user, target and parameters */
  readonly slot: string
  readonly id: string
}

/** The generation of a subject token: a digest, so that the key never holds the token. Made once per token. */
const generations = new WeakMap<AccessToken, string>()
const generationOf = (token: AccessToken): string => {
  let generation = generations.get(token)
  if (generation === undefined) {
    generation = Crypto.createHash("sha256").update(Redacted.value(token.accessToken)).digest("base64url").slice(0, 22)
    generations.set(token, generation)
  }
  return generation
}

const paramsOf = (target: Target, options: TokenRequestOptions | undefined): TokenRequestOptions => {
  const fields = {
    ...(target.audience === undefined ? {} : { audience: target.audience }),
    ...(target.requestedTokenType === undefined ? {} : { requested_token_type: target.requestedTokenType })
  }
  const parameters = Object.keys(fields).length === 0 && target.parameters === undefined &&
      options?.parameters === undefined
    ? undefined
    : { ...fields, ...target.parameters, ...options?.parameters }
  const scope = options?.scope ?? target.scope
  const resource = options?.resource ?? target.resource
  return {
    ...(scope === undefined ? {} : { scope }),
    ...(resource === undefined ? {} : { resource }),
    ...(parameters === undefined ? {} : { parameters })
  }
}

/** A URI, as RFC 8693 wants token types and RFC 8707 resource indicators (absolute, without a fragment). */
const isUri = (value: string): boolean => URL.canParse(value) && !value.includes("#")

type Actor = Effect.Effect<Redacted.Redacted<string>, TokenEndpointError | TokenStoreError | TokenManagerClosed>

/**
 * Checks a target given in code or configuration, and resolves its actor token: errors name the target and the
 * field (`targets.billing.resource`).
 */
const checkTarget = (name: string, target: Target) =>
  Effect.gen(function*() {
    const invalid = (field: string, reason: string) =>
      new InvalidClientConfiguration({ client: "TokenExchange", field: `targets.${name}.${field}`, reason })
    for (const field of ["audience", "scope"] as const) {
      if (target[field] !== undefined && target[field].trim() === "") return yield* invalid(field, "must not be empty")
    }
    if (target.resource !== undefined && !isUri(target.resource)) {
      return yield* invalid("resource", "must be an absolute URI without a fragment (RFC 8707)")
    }
    for (const field of ["requestedTokenType", "actorTokenType"] as const) {
      const value = target[field]
      if (value !== undefined && !isUri(value)) {
        return yield* invalid(field, "must be a URI such as urn:ietf:params:oauth:token-type:access_token")
      }
    }
    if (target.actorClient === undefined) return target.actorToken as Actor | undefined
    if (target.actorToken !== undefined) {
      return yield* invalid("actorClient", "give either actorToken or actorClient, not both")
    }
    const actorClient = target.actorClient
    const clients = yield* Effect.serviceOption(ClientCredentialsTokens)
    if (Option.isNone(clients)) {
      return yield* invalid(
        "actorClient",
        `names a client-credentials client ("${actorClient}"), but no ClientCredentialsTokens is provided`
      )
    }
    if (!clients.value.clients.includes(actorClient)) {
      return yield* invalid(
        "actorClient",
        `"${actorClient}" is not a ClientCredentialsTokens client (known: ${clients.value.clients.join(", ")})`
      )
    }
    return clients.value.get(actorClient).pipe(
      Effect.map((token) => token.accessToken),
      // the name was checked above
      Effect.catchTag("UnknownTokenClient", Effect.die)
    ) satisfies Actor
  })

/** @internal */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const endpoint = yield* TokenEndpoint
    const userTokens = yield* UserTokens
    const store = yield* AccessTokenStore
    const lock = yield* renewalLock("TokenExchange", store, yield* TokenLock)
    const client = yield* TokenClient.decode(options.client)
    const renewBefore = yield* validate.duration("TokenExchange", "renewBefore", options.renewBefore, "60 seconds")
    const backoff = yield* validate.backoff("TokenExchange", options.backoff)
    const targets = new Map(Object.entries(options.targets))
    const names = [...targets.keys()]
    const actors = new Map<string, Actor>()
    for (const [name, target] of targets) {
      const actor = yield* checkTarget(name, target)
      if (actor !== undefined) actors.set(name, actor)
    }

    const cache = yield* TokenCache.make<Key, AccessToken, TokenEndpointError | TokenStoreError | TokenManagerClosed>({
      keyOf: (key) => key.id,
      read: (key) => store.get(key.id),
      accessToken: (token) => token,
      renew: (key) =>
        Effect.gen(function*() {
          const actor = actors.get(key.name)
          const actorToken = actor === undefined ? undefined : yield* actor
          const response = yield* endpoint.request(
            client,
            Grant.TokenExchange({
              subjectToken: key.subject.accessToken,
              actorToken,
              actorTokenType: key.target.actorTokenType,
              options: key.params
            })
          )
          yield* store.set(key.id, response.accessToken)
          return response.accessToken
        }).pipe(Effect.withSpan("TokenExchange.exchange", { attributes: { "atm.target": key.name } }))
    }, { renewBefore, backoff, lock, memoize: true })

    /** The key of the live generation per slot: a newer subject token retires the token exchanged for the older. */
    const live = new Map<string, Key>()
    const retire = (key: Key): Effect.Effect<void> => {
      const previous = live.get(key.slot)
      if (previous === undefined || previous.id === key.id) return Effect.void
      live.set(key.slot, key)
      return Effect.zipRight(cache.forget(previous), Effect.ignore(store.remove(previous.id)))
    }

    const keyFor = (user: CurrentUser.User, name: string, get: TokenRequestOptions | undefined) =>
      Effect.gen(function*() {
        const target = targets.get(name)
        if (target === undefined) return yield* new UnknownTokenClient({ client: name, known: names })
        const subject = yield* userTokens.getFor(user, target.subject)
        const params = paramsOf(target, get)
        const storeKey = CurrentUser.storeKey(user)
        const generation = generationOf(subject)
        const key: Key = {
          name,
          target,
          subject,
          params,
          slot: exchangedTokenKey(name, storeKey, params, ""),
          id: exchangedTokenKey(name, storeKey, params, generation)
        }
        if (!live.has(key.slot)) live.set(key.slot, key)
        else yield* retire(key)
        return key
      })

    const getFor: TokenExchange["Type"]["getFor"] = (user, name, get) =>
      Effect.flatMap(keyFor(user, name, get), (key) => get?.forceRenewal ? cache.renew(key) : cache.get(key))

    return {
      targets: names,
      get: (name, get) => Effect.flatMap(CurrentUser.get, (user) => getFor(user, name, get)),
      getFor,
      renewFor: (user, name, rejected, get) =>
        Effect.flatMap(keyFor(user, name, get), (key) => cache.renew(key, rejected))
    } satisfies TokenExchange["Type"]
  })
