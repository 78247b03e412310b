import * as Effect from "effect/Effect"
import { AuthorizeError } from "../IdentityProvider.js"

interface Cookie {
  readonly name: string
  readonly value: string
  readonly path: string
}

/** A minimal cookie jar for one host: enough for oidc-provider's session and interaction cookies. */
class CookieJar {
  private readonly cookies = new Map<string, Cookie>()

  store(response: Response, url: URL): void {
    for (const header of response.headers.getSetCookie()) {
      const [pair = "", ...attributes] = header.split(";")
      const eq = pair.indexOf("=")
      if (eq <= 0) continue
      const name = pair.slice(0, eq).trim()
      const value = pair.slice(eq + 1).trim()
      let path = url.pathname.slice(0, url.pathname.lastIndexOf("/") + 1) || "/"
      let expired = value === ""
      for (const attribute of attributes) {
        const [key = "", ...rest] = attribute.split("=")
        const attributeValue = rest.join("=").trim()
        switch (key.trim().toLowerCase()) {
          case "path":
            path = attributeValue || "/"
            break
          case "max-age":
            if (Number(attributeValue) <= 0) expired = true
            break
          case "expires":
            if (Date.parse(attributeValue) <= Date.now()) expired = true
            break
        }
      }
      const key = `${name}\u0000${path}`
      if (expired) this.cookies.delete(key)
      else this.cookies.set(key, { name, value, path })
    }
  }

  header(url: URL): string | undefined {
    const matching = [...this.cookies.values()]
      .filter((cookie) =>
        url.pathname === cookie.path ||
        url.pathname.startsWith(cookie.path.endsWith("/") ? cookie.path : `${cookie.path}/`)
      )
      .sort((a, b) => b.path.length - a.path.length)
    return matching.length === 0 ? undefined : matching.map((c) => `${c.name}=${c.value}`).join("; ")
  }
}

const MAX_STEPS = 12
const PASSWORD = "dev-identity"

const formAction = /<form[^>]*\baction="([^"]+)"/i
const pageError = /<p class="error"[^>]*>([^<]*)<\/p>/i
const errorEntry = /<dd data-key="(error|error_description)">([^<]*)<\/dd>/gi

const unescape = (html: string) =>
  html.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&quot;/g, "\"").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&")

const describePage = (html: string): string | undefined => {
  const login = pageError.exec(html)
  if (login !== null) return unescape(login[1]!)
  const entries = [...html.matchAll(errorEntry)].map((m) => unescape(m[2]!))
  return entries.length > 0 ? entries.join(": ") : undefined
}

/**
 * Plays the browser in an authorization request: follows redirects on the issuer, signs in at the login page,
 * and stops at the first redirect that leaves the provider (the relying party's redirect_uri).
 *
 * @internal
 */
export const authorize = (issuer: string, authorizationUrl: URL | string, account: string) =>
  Effect.tryPromise({
    try: async (signal): Promise<URL | AuthorizeError> => {
      const origin = new URL(issuer).origin
      const jar = new CookieJar()
      let url = new URL(authorizationUrl)
      if (url.origin !== origin) {
        return new AuthorizeError({ reason: `the authorization URL is not on the provider ${origin}` })
      }
      let init: RequestInit = { method: "GET" }
      for (let step = 0; step < MAX_STEPS; step++) {
        const headers = new Headers(init.headers)
        const cookie = jar.header(url)
        if (cookie !== undefined) headers.set("cookie", cookie)
        headers.set("accept", "text/html")
        const response = await fetch(url, { ...init, headers, redirect: "manual", signal })
        jar.store(response, url)
        const location = response.headers.get("location")
        if (response.status >= 300 && response.status < 400 && location !== null) {
          await response.body?.cancel()
          const next = new URL(location, url)
          if (next.origin !== origin) return next
          url = next
          init = { method: "GET" }
          continue
        }
        const html = await response.text()
        const action = response.status === 200 && url.pathname.startsWith("/interaction/") ?
          formAction.exec(html)?.[1] :
          undefined
        if (action === undefined) {
          return new AuthorizeError({
            reason: describePage(html) ?? `unexpected response ${response.status} from ${url.pathname}`,
            status: response.status
          })
        }
        if (init.method === "POST") {
          return new AuthorizeError({
            reason: describePage(html) ?? "the login page was shown again after signing in",
            status: response.status
          })
        }
        url = new URL(unescape(action), url)
        init = {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ login: account, password: PASSWORD }).toString()
        }
      }
      return new AuthorizeError({ reason: `no redirect to the relying party after ${MAX_STEPS} requests` })
    },
    catch: (cause) => new AuthorizeError({ reason: `request to the provider failed: ${String(cause)}` })
  }).pipe(
    Effect.flatMap((result) => result instanceof AuthorizeError ? Effect.fail(result) : Effect.succeed(result))
  )
