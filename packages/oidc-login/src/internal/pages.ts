/** The few pages the login routes render themselves: errors, and the sign-out confirmation. */
import * as Crypto from "node:crypto"

export const escapeHtml = (value: unknown): string =>
  String(value).replace(
    /[&<>"']/g,
    (c) => c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "\"" ? "&quot;" : "&#39;"
  )

const style = `
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
  font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#111827}
main{width:100%;max-width:460px;margin:24px;padding:32px;background:#fff;border-radius:12px;
  box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}
h1{margin:0 0 12px;font-size:1.4rem}
p{margin:0 0 16px;color:#374151}
code{font-size:.85rem;color:#6b7280}
.actions{display:flex;gap:12px;margin-top:24px}
.button{display:inline-block;padding:10px 18px;font:inherit;font-weight:600;color:#fff;background:#2563eb;
  border:0;border-radius:8px;text-decoration:none;cursor:pointer}
.button:hover{background:#1d4ed8}
.button.secondary{color:#374151;background:#e5e7eb}
.button.secondary:hover{background:#d1d5db}
`

/**
 * The pages' own Content-Security-Policy: nothing but their inline stylesheet (by hash) and forms posting here
 * (the sign-out redirects on to the provider, which `form-action` must allow too).
 */
export const contentSecurityPolicy = (issuer: string): string =>
  `default-src 'none'; style-src 'sha256-${
    Crypto.createHash("sha256").update(style).digest("base64")
  }'; form-action 'self' ${new URL(issuer).origin}; frame-ancestors 'none'; base-uri 'none'`

const layout = (title: string, body: string): string =>
  `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${style}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>`

export const errorPage = (options: {
  readonly title: string
  readonly message: string
  readonly tag: string
  readonly loginUrl: string
  readonly homeUrl: string
}): string =>
  layout(
    options.title,
    `<h1>${escapeHtml(options.title)}</h1>
<p role="alert" data-error="${escapeHtml(options.tag)}">${escapeHtml(options.message)}</p>
<p><code>${escapeHtml(options.tag)}</code></p>
<div class="actions">
<a class="button" href="${escapeHtml(options.loginUrl)}">Sign in again</a>
<a class="button secondary" href="${escapeHtml(options.homeUrl)}">Home</a>
</div>`
  )

export const signOutPage = (options: { readonly action: string; readonly homeUrl: string }): string =>
  layout(
    "Sign out",
    `<h1>Sign out</h1>
<p>Sign out of this application and of the identity provider?</p>
<form method="post" action="${escapeHtml(options.action)}" class="actions">
<button class="button" type="submit">Sign out</button>
<a class="button secondary" href="${escapeHtml(options.homeUrl)}">Cancel</a>
</form>`
  )
