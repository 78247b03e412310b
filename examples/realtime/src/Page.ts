/**
 * The example's one page, in two states (signed out, signed in), its stylesheet and its script. Plain HTML: the
 * server renders who is signed in; the script opens the websocket and shows what the server pushes.
 */

const escape = (value: unknown): string =>
  String(value).replace(
    /[&<>"']/g,
    (c) => c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === "\"" ? "&quot;" : "&#39;"
  )

const layout = (
  title: string,
  body: string,
  options?: { readonly header?: string; readonly script?: boolean }
): string =>
  `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<link rel="stylesheet" href="/app.css">
${options?.script ? "<script src=\"/app.js\" defer></script>" : ""}
</head>
<body>
<header class="topbar">
<div class="brand"><span class="logo" aria-hidden="true">◆</span> effect-atm <span class="muted">realtime</span></div>
${options?.header ?? ""}
</header>
${body}
</body>
</html>`

export const signedOut = (options: { readonly loginUrl: string }): string =>
  layout(
    "Realtime demo — signed out",
    `<main class="center">
<section class="card hero" id="signed-out">
<h1>Live data, your token, no tokens in the browser</h1>
<p>Sign in, and this page opens a websocket. On the server, every couple of seconds, your access token calls a
protected API; the answer is pushed here. When the token gets old, the server refreshes it — you will see the
refresh count go up — and nothing ever leaves the server but the API's answer.</p>
<p class="state"><span class="dot off"></span> You are signed out.</p>
<a class="button" id="sign-in" href="${escape(options.loginUrl)}">Sign in</a>
<p class="hint">The embedded identity provider accepts any username and any non-empty password.</p>
</section>
</main>`
  )

export const signedIn = (options: {
  readonly subject: string
  readonly name: string
  readonly email: string | undefined
  readonly logoutUrl: string
  readonly apiUrl: string
  readonly intervalSeconds: number
  /** With several instances: the one that rendered this page. */
  readonly instance?: string | undefined
}): string =>
  layout(
    "Realtime demo",
    `<main class="grid" id="dashboard" data-interval="${options.intervalSeconds}">
<section class="card wide">
<div class="card-head">
<h2>Live data</h2>
<span class="pill" id="connection" data-state="connecting"><span class="dot"></span><span id="connection-text">Connecting…</span></span>
</div>
<p class="muted">The server calls <code>GET ${
      escape(options.apiUrl)
    }/inventory</code> every ${options.intervalSeconds} s with your access token and pushes the answer over the websocket.</p>
<dl class="facts">
<div><dt>Subject the API saw</dt><dd id="api-sub">—</dd></div>
<div><dt>Client</dt><dd id="api-client">—</dd></div>
<div><dt>Scope</dt><dd id="api-scope">—</dd></div>
<div><dt>Audience</dt><dd id="api-aud">—</dd></div>
<div><dt>Token id (jti)</dt><dd id="api-jti" class="mono">—</dd></div>
<div><dt>Path</dt><dd id="api-path" class="mono">—</dd></div>
<div><dt>Bound to (cnf)</dt><dd id="api-cnf" class="mono">—</dd></div>
</dl>
<p class="footnote"><span id="update-count">0</span> updates received · last at <span id="last-update">—</span></p>${
      options.instance === undefined ?
        "" :
        `\n<p class="footnote">This page came from instance <strong id="page-instance">${
          escape(options.instance)
        }</strong>; the live data comes from instance <strong id="ws-instance">—</strong>.</p>`
    }
<p class="error" id="error" hidden></p>
</section>
<section class="card">
<h2>Access token</h2>
<div class="big"><span id="refresh-count">0</span><span class="unit">refreshes</span></div>
<dl class="facts single">
<div><dt>Last refreshed</dt><dd id="last-refresh">not yet</dd></div>
<div><dt>Expires</dt><dd id="expires">—</dd></div>
</dl>
<div class="meter" aria-hidden="true"><div id="lifetime"></div></div>
<p class="footnote">Refreshed on the server, with the refresh token it holds for this session.</p>
</section>
<section class="card">
<h2>Where the tokens are</h2>
<ul class="plain">
<li><strong>Browser:</strong> a signed session id in an HttpOnly cookie. No tokens.</li>
<li><strong>Server:</strong> your access and refresh tokens, in the user token store, keyed by your session.</li>
<li><strong>Websocket:</strong> the connection acts for you — it has no HTTP request, just your user in its context.</li>
</ul>
</section>
</main>`,
    {
      script: true,
      header: `<div class="user" data-user="${escape(options.subject)}">
<span class="avatar" aria-hidden="true">${escape(options.name.slice(0, 1).toUpperCase())}</span>
<span class="who"><strong id="user-name">${escape(options.name)}</strong><span class="email">${
        escape(options.email ?? options.subject)
      }</span></span>
<form method="post" action="${
        escape(options.logoutUrl)
      }"><button class="button ghost" id="sign-out" type="submit">Sign out</button></form>
</div>`
    }
  )

export const css = `
*{box-sizing:border-box}
:root{--bg:#f4f5f7;--card:#fff;--text:#111827;--muted:#6b7280;--line:#e5e7eb;--accent:#2563eb;--ok:#16a34a;--warn:#d97706}
body{margin:0;font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--text)}
.topbar{display:flex;align-items:center;justify-content:space-between;padding:14px 28px;background:#111827;color:#f9fafb}
.brand{font-weight:700;letter-spacing:.2px}.brand .muted{color:#9ca3af;font-weight:500}
.logo{color:#60a5fa;margin-right:4px}
.user{display:flex;align-items:center;gap:12px}
.user form{margin:0 0 0 8px}
.who{display:flex;flex-direction:column;line-height:1.25}.email{color:#9ca3af;font-size:.85rem}
.avatar{display:inline-flex;align-items:center;justify-content:center;width:36px;height:36px;border-radius:50%;
  background:var(--accent);color:#fff;font-weight:700}
.muted{color:var(--muted)}
main.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:20px;max-width:1080px;margin:28px auto 40px;padding:0 24px}
main.center{display:flex;justify-content:center;padding:64px 24px}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:22px 24px;
  box-shadow:0 1px 2px rgba(0,0,0,.04)}
.card.wide{grid-column:1 / -1}
.card.hero{max-width:560px}
.card-head{display:flex;align-items:center;justify-content:space-between;gap:12px}
h1{margin:0 0 12px;font-size:1.5rem}
h2{margin:0 0 8px;font-size:1.05rem}
p{margin:0 0 12px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
.facts{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:14px 20px;margin:16px 0 8px}
.facts.single{grid-template-columns:1fr 1fr}
.facts dt{font-size:.78rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.facts dd{margin:2px 0 0;font-weight:600;overflow-wrap:anywhere}
.flash{animation:flash .8s ease-out}
@keyframes flash{from{background:#dbeafe}to{background:transparent}}
.footnote{margin:12px 0 0;font-size:.85rem;color:var(--muted)}
.big{display:flex;align-items:baseline;gap:8px;margin:8px 0 4px}
.big span:first-child{font-size:2.4rem;font-weight:700;line-height:1}
.unit{color:var(--muted)}
.meter{height:8px;border-radius:4px;background:var(--line);overflow:hidden;margin-top:6px}
.meter div{height:100%;width:0;background:var(--ok);transition:width 1s linear}
.pill{display:inline-flex;align-items:center;gap:8px;padding:4px 12px;border-radius:999px;font-size:.85rem;
  font-weight:600;background:#f3f4f6;color:#374151}
.dot{width:8px;height:8px;border-radius:50%;background:var(--warn);display:inline-block}
.pill[data-state=live]{background:#dcfce7;color:#166534}.pill[data-state=live] .dot{background:var(--ok)}
.pill[data-state=ended] .dot,.dot.off{background:#9ca3af}
.state{display:flex;align-items:center;gap:8px;font-weight:600}
.button{display:inline-block;padding:9px 18px;font:inherit;font-weight:600;color:#fff;background:var(--accent);
  border:0;border-radius:8px;text-decoration:none;cursor:pointer}
.button:hover{background:#1d4ed8}
.button.ghost{padding:7px 14px;color:#f9fafb;background:transparent;border:1px solid #4b5563}
.button.ghost:hover{background:#1f2937}
.hint{margin:16px 0 0;font-size:.85rem;color:var(--muted)}
.error{margin-top:12px;padding:10px 12px;border-radius:8px;background:#fee2e2;color:#991b1b}
ul.plain{margin:8px 0 0;padding-left:18px}ul.plain li{margin:6px 0}
@media (max-width:760px){main.grid{grid-template-columns:1fr}.facts{grid-template-columns:1fr 1fr}}
`

export const script = `"use strict"
const $ = (id) => document.getElementById(id)
const time = (ms) => new Date(ms).toLocaleTimeString()
let updates = 0
let token = undefined
let ended = false

function set(id, value) {
  const element = $(id)
  if (element.textContent !== String(value)) {
    element.textContent = value
    element.classList.remove("flash")
    void element.offsetWidth
    element.classList.add("flash")
  }
}

function connection(state, text) {
  $("connection").dataset.state = state
  $("connection-text").textContent = text
  document.body.dataset.connection = state
}

function tick() {
  if (token === undefined) return
  const now = Date.now()
  const left = Math.max(0, Math.round((token.accessTokenExpiresAt - now) / 1000))
  $("expires").textContent = time(token.accessTokenExpiresAt) + " (in " + left + " s)"
  const lifetime = token.accessTokenExpiresAt - (token.lastRefreshedAt ?? token.signedInAt)
  $("lifetime").style.width = Math.max(0, Math.min(100, ((token.accessTokenExpiresAt - now) / lifetime) * 100)) + "%"
  if (token.lastRefreshedAt !== undefined) {
    $("last-refresh").textContent = time(token.lastRefreshedAt) + " (" + Math.round((now - token.lastRefreshedAt) / 1000) + " s ago)"
  }
}

function onMessage(message) {
  if (message.type === "update") {
    updates++
    $("update-count").textContent = updates
    $("last-update").textContent = time(message.at)
    set("api-sub", message.api.sub)
    set("api-client", message.api.client_id)
    set("api-scope", message.api.scope)
    set("api-aud", message.api.aud)
    set("api-jti", message.api.jti.slice(0, 12) + "…")
    set("api-path", message.api.path)
    set("api-cnf", message.api.cnf && message.api.cnf.jkt ? "DPoP key " + message.api.cnf.jkt.slice(0, 12) + "…" : "nothing (a bearer token)")
    set("refresh-count", message.token.refreshes)
    if (message.instance !== undefined && $("ws-instance")) set("ws-instance", message.instance)
    token = message.token
    $("error").hidden = true
    tick()
  } else if (message.type === "error") {
    $("error").textContent = message.message
    $("error").hidden = false
  } else if (message.type === "signed-out") {
    ended = true
    connection("ended", "Signed out")
  }
}

function connect() {
  connection("connecting", "Connecting…")
  const socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws")
  socket.addEventListener("open", () => connection("live", "Live"))
  socket.addEventListener("message", (event) => onMessage(JSON.parse(event.data)))
  socket.addEventListener("close", async (event) => {
    if (ended || event.code === 4001) {
      ended = true
      connection("ended", "Signed out")
      return
    }
    // closed for another reason: reconnect while the session lasts
    const me = await fetch("/api/me").catch(() => undefined)
    if (me !== undefined && me.status === 401) {
      ended = true
      connection("ended", "Signed out")
      return
    }
    connection("connecting", "Reconnecting…")
    setTimeout(connect, 2000)
  })
}

setInterval(tick, 1000)
connect()
`
