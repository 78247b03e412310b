import * as Http from "node:http"
import * as Timers from "node:timers/promises"
import type { Provider } from "oidc-provider"
import type { IdentityProvider, TokenEndpointFault } from "../IdentityProvider.js"
import { readBody } from "./http.js"

type Middleware = Parameters<Provider["use"]>[0]
type KoaContext = Parameters<Middleware>[0]

/** What the counters keep of a token request. @internal */
interface TokenRequestSeen {
  readonly grantType: string | undefined
  readonly clientId: string | undefined
  /** it carried a `client_assertion` (private_key_jwt, client_secret_jwt) */
  readonly clientAssertion: boolean
  /** it carried a `DPoP` proof header */
  readonly dpop: boolean
}

/**
 * Counters and injected faults of the token endpoint. Koa middleware mutates it outside any fiber; the service
 * reads it with `Effect.sync`.
 *
 * @internal
 */
export class TokenEndpointState {
  private readonly counts = new Map<string, TokenRequestSeen & { n: number }>()
  private fault: TokenEndpointFault | undefined = undefined
  private remaining: number | undefined = undefined
  private until: number | undefined = undefined

  record(seen: TokenRequestSeen): void {
    const key = `${seen.grantType ?? ""}\u0000${seen.clientId ?? ""}\u0000${seen.clientAssertion}\u0000${seen.dpop}`
    const entry = this.counts.get(key)
    if (entry === undefined) this.counts.set(key, { ...seen, n: 1 })
    else entry.n++
  }

  count(filter?: Parameters<IdentityProvider["Type"]["tokenRequests"]>[0]): number {
    let total = 0
    for (const entry of this.counts.values()) {
      if (filter?.grantType !== undefined && entry.grantType !== filter.grantType) continue
      if (filter?.clientId !== undefined && entry.clientId !== filter.clientId) continue
      if (filter?.clientAssertion !== undefined && entry.clientAssertion !== filter.clientAssertion) continue
      if (filter?.dpop !== undefined && entry.dpop !== filter.dpop) continue
      total += entry.n
    }
    return total
  }

  reset(): void {
    this.counts.clear()
  }

  setFault(fault: TokenEndpointFault | undefined, times: number | undefined): void {
    this.fault = fault
    this.remaining = fault === undefined || fault._tag === "Downtime" ? undefined : times
    this.until = fault?._tag === "Downtime" ? Date.now() + fault.millis : undefined
  }

  /** the fault for the request being handled, if any; consumes one of its `times` */
  takeFault(): TokenEndpointFault | undefined {
    const fault = this.fault
    if (fault === undefined) return undefined
    if (this.until !== undefined && Date.now() >= this.until) {
      this.fault = undefined
      this.until = undefined
      return undefined
    }
    if (this.remaining !== undefined) {
      this.remaining--
      if (this.remaining <= 0) {
        this.fault = undefined
        this.remaining = undefined
      }
    }
    return fault
  }
}

const clientIdFromAuthorization = (header: string | undefined): string | undefined => {
  if (header === undefined || !/^basic /i.test(header)) return undefined
  try {
    const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8")
    const colon = decoded.indexOf(":")
    return colon === -1 ? undefined : decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " "))
  } catch {
    return undefined
  }
}

const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

// After oidc-provider handled the request: what it parsed, or as much of it as it got to.
const describeHandled = (ctx: KoaContext): TokenRequestSeen => {
  const oidc: any = Object.getOwnPropertyDescriptor(ctx, "oidc") === undefined ? undefined : (ctx as any).oidc
  const grantType = str(oidc?.params?.grant_type) ?? str(oidc?.body?.grant_type)
  const clientId = str(oidc?.client?.clientId) ??
    clientIdFromAuthorization(ctx.get("authorization") || undefined) ??
    str(oidc?.body?.client_id)
  const clientAssertion = str(oidc?.body?.client_assertion) !== undefined
  return { grantType, clientId, clientAssertion, dpop: ctx.get("dpop") !== "" }
}

// A request oidc-provider never sees (or sees later): described from the form read here.
const describeForm = (ctx: KoaContext, form: URLSearchParams): TokenRequestSeen => ({
  grantType: form.get("grant_type") ?? undefined,
  clientId: clientIdFromAuthorization(ctx.get("authorization") || undefined) ?? form.get("client_id") ?? undefined,
  clientAssertion: form.has("client_assertion"),
  dpop: ctx.get("dpop") !== ""
})

/** The request with its body, already read, readable again by oidc-provider's body parser. */
const replay = (req: Http.IncomingMessage, body: Buffer): Http.IncomingMessage =>
  new Proxy(req, {
    get(target, property) {
      if (property === "readable") return true
      if (property === "readableEncoding") return null
      if (property === "iterator") {
        return () =>
          (async function*() {
            yield body
          })()
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === "function" ? value.bind(target) : value
    }
  })

const faultPage = (status: number) =>
  `<!DOCTYPE html>\n<html><head><title>${status} ${Http.STATUS_CODES[status] ?? "Error"}</title></head>` +
  `<body><h1>${status}</h1><p>The token service failed (fault injected by dev-identity).</p>` +
  `</body></html>\n`

/**
 * Counts every request that reaches the token endpoint and applies the injected fault, if any.
 *
 * @internal
 */
export const tokenEndpointMiddleware = (options: {
  readonly tokenPath: string
  readonly state: TokenEndpointState
  readonly signal: AbortSignal
}): Middleware =>
async (ctx, next) => {
  if (ctx.path !== options.tokenPath) return next()
  const fault = options.state.takeFault()

  const proceed = async () => {
    try {
      await next()
    } finally {
      options.state.record(describeHandled(ctx))
    }
  }

  const shortCircuit = async (respond: () => void) => {
    // oidc-provider never sees this request: read the form ourselves so that it is still counted
    const body = new URLSearchParams(await readBody(ctx.req).catch(() => ""))
    options.state.record(describeForm(ctx, body))
    ctx.set("Cache-Control", "no-store")
    respond()
  }

  switch (fault?._tag) {
    case undefined:
      return proceed()
    case "Delay": {
      // Counted on arrival, from the form read here: a request its client abandons during the delay (a timeout) is
      // counted while that client still waits, not a delay later in whatever test runs next.
      const raw = await readBody(ctx.req).catch(() => "")
      const form = new URLSearchParams(raw)
      options.state.record(describeForm(ctx, form))
      const gone = new AbortController()
      ctx.res.once("close", () => gone.abort())
      try {
        await Timers.setTimeout(fault.millis, undefined, { signal: AbortSignal.any([options.signal, gone.signal]) })
      } catch {
        return // the client went away, or the provider is shutting down
      }
      ctx.req = replay(ctx.req, Buffer.from(raw))
      return next()
    }
    case "LateAnswer": {
      // handled at once (a refresh token is rotated), answered late: what an overloaded provider does
      await proceed()
      await Timers.setTimeout(fault.millis, undefined, { signal: options.signal }).catch(() => undefined)
      return
    }
    case "ServerError":
    case "Downtime":
      return shortCircuit(() => {
        const status = fault.status ?? 503
        ctx.status = status
        ctx.type = "text/html; charset=utf-8"
        ctx.body = faultPage(status)
        if (fault._tag === "ServerError" && fault.retryAfter !== undefined) {
          ctx.set("Retry-After", String(fault.retryAfter))
        }
      })
    case "ConnectionReset":
      return shortCircuit(() => {
        // no answer at all: the connection goes, as when the provider crashed or a proxy dropped it
        ctx.respond = false
        ctx.req.socket.destroy()
      })
    case "EmptyBody":
      return shortCircuit(() => {
        ctx.status = fault.status
        ctx.body = ""
        ctx.remove("Content-Type")
      })
    case "HugeBody":
      return shortCircuit(() => {
        ctx.status = 200
        ctx.type = "application/json; charset=utf-8"
        const prefix = "{\"access_token\":\""
        ctx.body = Buffer.concat([Buffer.from(prefix), Buffer.alloc(Math.max(0, fault.bytes - prefix.length), 0x61)])
      })
    case "NonJson":
      return shortCircuit(() => {
        ctx.status = 200
        ctx.type = "text/html; charset=utf-8"
        ctx.body = "<!DOCTYPE html>\n<html><body><p>Welcome! This is not a token response.</p></body></html>\n"
      })
    case "MalformedJson":
      return shortCircuit(() => {
        ctx.status = 200
        ctx.type = "application/json; charset=utf-8"
        ctx.body = "{\"foo\":1}"
      })
    case "TruncatedJson":
      return shortCircuit(() => {
        ctx.status = 200
        ctx.type = "application/json; charset=utf-8"
        ctx.body = "{\"access_token\":\"eyJhbGciOiJSUzI1NiJ9.eyJzdWIi"
      })
    case "WrongTokenType":
    case "MissingExpiresIn":
    case "MissingAccessToken": {
      await proceed()
      const body = ctx.body as Record<string, unknown> | undefined
      if (ctx.status === 200 && typeof body === "object" && body !== null && !Buffer.isBuffer(body)) {
        if (fault._tag === "WrongTokenType") body.token_type = "mac"
        else if (fault._tag === "MissingAccessToken") delete body.access_token
        else delete body.expires_in
      }
      return
    }
  }
}
