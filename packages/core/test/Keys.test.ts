import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { AccessToken, keyPart, parametersKey, type TokenRequestOptions } from "../src/AccessToken.js"
import * as CurrentUser from "../src/CurrentUser.js"
import { clientCredentialsKey, userTokenKey } from "../src/internal/keys.js"
import * as TokenEndpoint from "../src/TokenEndpoint.js"
import * as TokenLock from "../src/TokenLock.js"
import { UserToken } from "../src/UserToken.js"
import * as UserTokens from "../src/UserTokens.js"
import * as UserTokenStore from "../src/UserTokenStore.js"

// A small alphabet of separators, escapes and control characters (old and new), so that the generator hits
// colliding candidates often; and arbitrary UTF-16 (lone surrogates included) for everything else.
const tricky = FastCheck.constantFrom(
  "a",
  "b",
  "&",
  "=",
  "#",
  ";",
  ".",
  "%",
  "%0026",
  "s=",
  "p.",
  "\u001f",
  "\u001e",
  "\u001d",
  "\u0000",
  "\n",
  " ",
  "é",
  "\ud800",
  "😀"
)
const text = FastCheck.oneof(
  FastCheck.string({ unit: tricky, maxLength: 6 }),
  FastCheck.string({ unit: "binary", maxLength: 12 })
)
const nonEmpty = FastCheck.oneof(
  FastCheck.string({ unit: tricky, minLength: 1, maxLength: 6 }),
  FastCheck.string({ unit: "binary", minLength: 1, maxLength: 12 })
)
const options: FastCheck.Arbitrary<TokenRequestOptions | undefined> = FastCheck.option(
  FastCheck.record({
    scope: FastCheck.option(text, { nil: undefined }),
    resource: FastCheck.option(text, { nil: undefined }),
    parameters: FastCheck.option(FastCheck.dictionary(text, text, { maxKeys: 3 }), { nil: undefined })
  }, { requiredKeys: [] }),
  { nil: undefined }
)
const user = FastCheck.record({
  subject: nonEmpty,
  sessionId: FastCheck.option(nonEmpty, { nil: undefined })
}).map(({ sessionId, subject }) => new CurrentUser.User({ subject, ...(sessionId === undefined ? {} : { sessionId }) }))

/** What a token request carries: no scope differs from an empty one; no parameters equal an empty record. */
const normalized = (o: TokenRequestOptions | undefined) => ({
  scope: o?.scope,
  resource: o?.resource,
  parameters: Object.entries(o?.parameters ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
})
const sameRequest = (a: TokenRequestOptions | undefined, b: TokenRequestOptions | undefined) =>
  JSON.stringify(normalized(a)) === JSON.stringify(normalized(b))
const sameUser = (a: CurrentUser.User, b: CurrentUser.User) => a.subject === b.subject && a.sessionId === b.sessionId
const printable = /^[\x21-\x7e]*$/

describe("keys", () => {
  it.prop("keyPart: distinct components never share an encoding, which is printable ASCII", [text, text], ([a, b]) => {
    assert.strictEqual(keyPart(a) === keyPart(b), a === b)
    assert.match(keyPart(a), printable)
  })

  it.prop(
    "parametersKey: distinct parameters never share a key, whatever the order of the extra parameters",
    [options, options],
    ([a, b]) => {
      assert.strictEqual(parametersKey(a) === parametersKey(b), sameRequest(a, b))
      assert.match(parametersKey(a), printable)
      if (a?.parameters !== undefined) {
        const reversed = Object.fromEntries(Object.entries(a.parameters).reverse())
        assert.strictEqual(parametersKey({ ...a, parameters: reversed }), parametersKey(a))
      }
    },
    { fastCheck: { numRuns: 2000 } }
  )

  it.prop("storeKey: distinct users (subject and session) never share a key", [user, user], ([a, b]) => {
    assert.strictEqual(CurrentUser.storeKey(a) === CurrentUser.storeKey(b), sameUser(a, b))
    assert.match(CurrentUser.storeKey(a), printable)
  }, { fastCheck: { numRuns: 2000 } })

  it.prop(
    "cache keys of client-credentials and user tokens: distinct (owner, parameters) pairs never share a key",
    [nonEmpty, nonEmpty, user, user, options, options],
    ([nameA, nameB, userA, userB, a, b]) => {
      const same = sameRequest(a, b)
      assert.strictEqual(clientCredentialsKey(nameA, a) === clientCredentialsKey(nameB, b), nameA === nameB && same)
      assert.strictEqual(
        userTokenKey(CurrentUser.storeKey(userA), a) === userTokenKey(CurrentUser.storeKey(userB), b),
        sameUser(userA, userB) && same
      )
      assert.match(clientCredentialsKey(nameA, a), printable)
      assert.match(userTokenKey(CurrentUser.storeKey(userA), a), printable)
    },
    { fastCheck: { numRuns: 2000 } }
  )

  it("the collisions of the old format are distinct keys now", () => {
    // a resource holding the old separator, and a subject holding the old session separator
    assert.notStrictEqual(
      parametersKey({ scope: "a\u001fr=b" }),
      parametersKey({ scope: "a", resource: "b" })
    )
    assert.notStrictEqual(
      CurrentUser.storeKey(new CurrentUser.User({ subject: "alice\u001es1" })),
      CurrentUser.storeKey(new CurrentUser.User({ subject: "alice", sessionId: "s1" }))
    )
    // readable where nothing needs escaping
    assert.strictEqual(CurrentUser.storeKey(new CurrentUser.User({ subject: "alice", sessionId: "s-1" })), "alice;s-1")
    assert.strictEqual(parametersKey({ resource: "https://api.example.com/v1" }), "r=https://api.example.com/v1")
  })
})

describe("user tokens with extra token-request parameters", () => {
  it.scoped("parameters are sent on refresh and are part of the key", () =>
    Effect.gen(function*() {
      const grants: Array<TokenEndpoint.Grant> = []
      let serial = 0
      const endpoint = Layer.succeed(
        TokenEndpoint.TokenEndpoint,
        {
          request: (_client: unknown, grant: TokenEndpoint.Grant) =>
            Effect.clockWith((clock) =>
              Effect.sync(() => {
                grants.push(grant)
                const now = clock.unsafeCurrentTimeMillis()
                return {
                  accessToken: new AccessToken({
                    accessToken: Redacted.make(`access-${++serial}`),
                    tokenType: "Bearer",
                    issuedAt: now,
                    expiresAt: now + 300_000
                  })
                }
              })
            )
        } as unknown as TokenEndpoint.TokenEndpoint["Type"]
      )
      const context = yield* Layer.build(
        UserTokens.layer({
          client: { tokenEndpoint: "http://127.0.0.1:1/token", clientId: "web", clientSecret: Redacted.make("s") }
        }).pipe(Layer.provideMerge(UserTokenStore.layerMemory()), Layer.provide([endpoint, TokenLock.layerMemory]))
      )
      const tokens = yield* Effect.provide(UserTokens.UserTokens, context)
      const store = yield* Effect.provide(UserTokenStore.UserTokenStore, context)
      const alice = new CurrentUser.User({ subject: "alice" })
      yield* store.store(
        CurrentUser.storeKey(alice),
        new UserToken({ clientId: "web", refreshToken: Redacted.make("refresh-1") })
      )
      const audienceA = { parameters: { audience: "https://a.example.com" } }
      const first = yield* tokens.getFor(alice, audienceA)
      assert.strictEqual(grants.length, 1)
      const grant = grants[0]!
      assert.strictEqual(grant._tag, "RefreshToken")
      assert.deepStrictEqual(grant.options?.parameters, { audience: "https://a.example.com" })
      // the same parameters: served from the store, no second refresh
      assert.strictEqual(
        Redacted.value((yield* tokens.getFor(alice, audienceA)).accessToken),
        Redacted.value(first.accessToken)
      )
      assert.strictEqual(grants.length, 1)
      // different parameters: a token of their own
      const second = yield* tokens.getFor(alice, { parameters: { audience: "https://b.example.com" } })
      assert.strictEqual(grants.length, 2)
      assert.notStrictEqual(Redacted.value(second.accessToken), Redacted.value(first.accessToken))
      assert.strictEqual(
        Redacted.value((yield* tokens.getFor(alice, audienceA)).accessToken),
        Redacted.value(first.accessToken)
      )
    }))
})
