import { htmlEscape } from "./http.js"

const style = `
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
  font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f4f6;color:#111827}
main{width:100%;max-width:380px;margin:24px;padding:32px;background:#fff;border-radius:12px;
  box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}
h1{margin:0 0 4px;font-size:1.5rem}
p.lead{margin:0 0 24px;color:#4b5563}
label{display:block;margin:16px 0 6px;font-weight:600;font-size:.9rem}
input{width:100%;padding:10px 12px;font:inherit;border:1px solid #d1d5db;border-radius:8px}
input:focus{outline:2px solid #2563eb;outline-offset:1px;border-color:#2563eb}
button{width:100%;margin-top:24px;padding:11px;font:inherit;font-weight:600;color:#fff;background:#2563eb;
  border:0;border-radius:8px;cursor:pointer}
button:hover{background:#1d4ed8}
button.secondary{margin-top:8px;color:#374151;background:#e5e7eb}
button.secondary:hover{background:#d1d5db}
.error{margin:0 0 16px;padding:10px 12px;color:#991b1b;background:#fee2e2;border-radius:8px}
.hint{margin:20px 0 0;font-size:.85rem;color:#6b7280}
.cancel{display:block;margin-top:12px;text-align:center;font-size:.9rem;color:#6b7280}
dl{margin:0}dt{font-weight:600}dd{margin:0 0 12px;word-break:break-word;color:#4b5563}
`

/** @internal */
export const layout = (title: string, body: string): string =>
  `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${htmlEscape(title)}</title>
<style>${style}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`

/** @internal */
export const loginPage = (options: {
  readonly action: string
  readonly cancel: string
  readonly client: string
  readonly login?: string | undefined
  readonly error?: string | undefined
}): string =>
  layout(
    "Sign in - dev-identity",
    `<h1>Sign in</h1>
<p class="lead">to continue to <strong>${htmlEscape(options.client)}</strong></p>
${options.error === undefined ? "" : `<p class="error" role="alert">${htmlEscape(options.error)}</p>`}
<form method="post" action="${htmlEscape(options.action)}" autocomplete="off">
<label for="login">Username</label>
<input id="login" name="login" type="text" required autofocus autocapitalize="none" spellcheck="false"
  pattern="[A-Za-z0-9._\\-]{1,64}" maxlength="64" value="${htmlEscape(options.login ?? "")}">
<label for="password">Password</label>
<input id="password" name="password" type="password" required>
<button type="submit">Sign in</button>
</form>
<a class="cancel" href="${htmlEscape(options.cancel)}">Cancel</a>
<p class="hint">Development identity provider: any username made of letters, digits, dot, dash or underscore
exists, and any non-empty password is accepted.</p>`
  )

/** @internal */
export const errorPage = (title: string, entries: Record<string, unknown>): string =>
  layout(
    title,
    `<h1>${htmlEscape(title)}</h1>
<dl>
${
      Object.entries(entries)
        .filter(([, value]) => value !== undefined)
        .map(([key, value]) => `<dt>${htmlEscape(key)}</dt><dd data-key="${htmlEscape(key)}">${htmlEscape(value)}</dd>`)
        .join("\n")
    }
</dl>`
  )

/** @internal */
export const logoutPage = (form: string, host: string): string =>
  layout(
    "Sign out - dev-identity",
    `<h1>Sign out</h1>
<p class="lead">Do you want to sign out from ${htmlEscape(host)}?</p>
${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Sign out</button>
<button type="submit" form="op.logoutForm" class="secondary">Stay signed in</button>`
  )

/** @internal */
export const signedOutPage = (client: string | undefined): string =>
  layout(
    "Signed out - dev-identity",
    `<h1>Signed out</h1>
<p class="lead">You have been signed out${client === undefined ? "" : ` of ${htmlEscape(client)}`}.</p>`
  )
