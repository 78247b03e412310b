import type { Provider } from "oidc-provider"
import { readBody } from "./http.js"
import * as Pages from "./pages.js"

type Middleware = Parameters<Provider["use"]>[0]
type Interaction = Awaited<ReturnType<Provider["interactionDetails"]>>
type Grant = InstanceType<Provider["Grant"]>

/**
 * Account ids that exist at the dev provider.
 *
 * @internal
 */
export const accountIdPattern = /^[A-Za-z0-9._-]{1,64}$/

const interactionPath = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/

const words = (value: unknown): Array<string> => (typeof value === "string" ? value.split(" ").filter(Boolean) : [])

const resourcesOf = (value: unknown): Array<string> =>
  typeof value === "string" ? [value] : Array.isArray(value) ? value.filter((r) => typeof r === "string") : []

/**
 * The login page and the automatic consent of the dev provider, as Koa middleware in front of oidc-provider.
 *
 * @internal
 */
export const interactionsMiddleware = (options: {
  readonly provider: Provider
  readonly oidcScopes: ReadonlySet<string>
  readonly resourceScopes: (resource: string) => ReadonlySet<string> | undefined
}): Middleware => {
  const { provider } = options

  // Grants every requested scope: all our clients are first party, consent is implied.
  const grantRequested = (interaction: Interaction, grant: Grant) => {
    const requested = words(interaction.params.scope)
    const oidc = requested.filter((scope) => options.oidcScopes.has(scope))
    if (oidc.length > 0) grant.addOIDCScope(oidc)
    for (const resource of resourcesOf(interaction.params.resource)) {
      const supported = options.resourceScopes(resource)
      const scopes = requested.filter((scope) => supported?.has(scope))
      if (scopes.length > 0) grant.addResourceScope(resource, scopes)
    }
  }

  // Whatever the consent prompt still reports as missing (e.g. claims requested with the claims parameter).
  const grantMissing = (interaction: Interaction, grant: Grant) => {
    const details = interaction.prompt.details as {
      readonly missingOIDCScope?: ReadonlyArray<string>
      readonly missingOIDCClaims?: ReadonlyArray<string>
      readonly missingResourceScopes?: Readonly<Record<string, ReadonlyArray<string>>>
    }
    if (details.missingOIDCScope !== undefined) grant.addOIDCScope([...details.missingOIDCScope])
    if (details.missingOIDCClaims !== undefined) grant.addOIDCClaims([...details.missingOIDCClaims])
    for (const [resource, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
      grant.addResourceScope(resource, [...scopes])
    }
  }

  const loadGrant = async (interaction: Interaction, accountId: string): Promise<Grant> => {
    const existing = interaction.grantId === undefined ? undefined : await provider.Grant.find(interaction.grantId)
    return existing ?? new provider.Grant({ accountId, clientId: String(interaction.params.client_id) })
  }

  return async (ctx, next) => {
    const match = interactionPath.exec(ctx.path)
    if (match === null) return next()
    const [, uid, action] = match
    ctx.set("Cache-Control", "no-store")

    let interaction: Interaction
    try {
      interaction = await provider.interactionDetails(ctx.req, ctx.res)
      if (interaction.uid !== uid) throw new Error("interaction mismatch")
    } catch {
      ctx.status = 400
      ctx.type = "html"
      ctx.body = Pages.errorPage("Sign-in session expired", {
        error: "invalid_request",
        error_description: "the sign-in request was not found or has expired; start again from the application"
      })
      return
    }

    const finish = async (result: Parameters<Provider["interactionResult"]>[2]) => {
      const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true })
      ctx.status = 303
      ctx.redirect(returnTo)
    }

    if (action === "abort") {
      return finish({ error: "access_denied", error_description: "End-User aborted interaction" })
    }

    const client = await provider.Client.find(String(interaction.params.client_id))
    const clientName = client?.clientName ?? String(interaction.params.client_id)
    const page = (status: number, error?: string, login?: string) => {
      ctx.status = status
      ctx.type = "html"
      ctx.body = Pages.loginPage({
        action: `/interaction/${uid}/login`,
        cancel: `/interaction/${uid}/abort`,
        client: clientName,
        login,
        error
      })
    }

    if (action === "login") {
      if (ctx.method !== "POST") return page(405, "Submit the form to sign in.")
      if (interaction.prompt.name !== "login") {
        return page(400, "This sign-in request does not expect a login any more; start again from the application.")
      }
      const form = new URLSearchParams(await readBody(ctx.req).catch(() => ""))
      const login = (form.get("login") ?? "").trim()
      const password = form.get("password") ?? ""
      if (!accountIdPattern.test(login)) {
        return page(400, "Enter a username of 1 to 64 letters, digits, dots, dashes or underscores.", login)
      }
      if (password.length === 0) return page(400, "Enter a password (any password is accepted).", login)

      // Sign in and consent in one step, so that a login costs one round trip less.
      const grant = await loadGrant(interaction, login)
      grantRequested(interaction, grant)
      const grantId = await grant.save()
      return finish({ login: { accountId: login }, consent: { grantId } })
    }

    if (ctx.method !== "GET") return next()
    switch (interaction.prompt.name) {
      case "login":
        return page(200)
      case "consent": {
        const grant = await loadGrant(interaction, interaction.session?.accountId ?? "")
        grantRequested(interaction, grant)
        grantMissing(interaction, grant)
        const grantId = await grant.save()
        return finish({ consent: { grantId } })
      }
      default:
        ctx.status = 400
        ctx.type = "html"
        ctx.body = Pages.errorPage("Unsupported interaction", {
          error: "invalid_request",
          error_description: `the dev provider cannot handle the "${interaction.prompt.name}" prompt`
        })
    }
  }
}
