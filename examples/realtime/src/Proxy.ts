/**
 * A small round-robin reverse proxy on 127.0.0.1, standing in for the load balancer in front of two instances:
 * each HTTP request goes to the next instance, and so does each websocket (on a rotation of its own, so that two
 * tabs' connections land on different instances). It remembers where it sent what, for the page and the tests.
 */
import * as Effect from "effect/Effect"
import * as Http from "node:http"
import * as Net from "node:net"

export interface Target {
  readonly name: string
  readonly port: number
}

export interface Routed {
  readonly instance: string
  readonly method: string
  readonly path: string
  readonly websocket: boolean
}

export interface Proxy {
  readonly port: number
  /** Where requests go from now on. */
  readonly setTargets: (targets: ReadonlyArray<Target>) => void
  /** Every request and websocket so far, in order. */
  readonly routed: ReadonlyArray<Routed>
}

/** Listens on `port` (0: a free one) until the scope closes. */
export const make = (port: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly proxy: Proxy; readonly server: Http.Server; readonly upgraded: Set<Net.Socket> }, Error>(
      (resume) => {
        let targets: ReadonlyArray<Target> = []
        let requests = 0
        let websockets = 0
        const routed: Array<Routed> = []
        /** Websockets are detached from the HTTP server: closed by hand at the end. */
        const upgraded = new Set<Net.Socket>()
        const pick = (n: number) => targets[n % targets.length]
        const server = Http.createServer((request, response) => {
          const target = pick(requests++)
          if (target === undefined) {
            response.writeHead(503).end("no instance")
            return
          }
          routed.push({
            instance: target.name,
            method: request.method ?? "GET",
            path: request.url ?? "/",
            websocket: false
          })
          const upstream = Http.request({
            host: "127.0.0.1",
            port: target.port,
            method: request.method,
            path: request.url,
            headers: request.headers
          }, (answer) => {
            response.writeHead(answer.statusCode ?? 502, { ...answer.headers, "x-instance": target.name })
            answer.pipe(response)
          })
          upstream.on("error", () => {
            if (!response.headersSent) response.writeHead(502)
            response.end()
          })
          request.pipe(upstream)
        })
        server.on("upgrade", (request: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => {
          const target = pick(websockets++)
          if (target === undefined) {
            socket.destroy()
            return
          }
          upgraded.add(socket)
          routed.push({
            instance: target.name,
            method: request.method ?? "GET",
            path: request.url ?? "/",
            websocket: true
          })
          const upstream = Net.connect(target.port, "127.0.0.1", () => {
            // the upgrade request as it came, then both directions as raw bytes
            let head_ = `${request.method} ${request.url} HTTP/${request.httpVersion}\r\n`
            for (let i = 0; i < request.rawHeaders.length; i += 2) {
              head_ += `${request.rawHeaders[i]}: ${request.rawHeaders[i + 1]}\r\n`
            }
            upstream.write(head_ + "\r\n")
            if (head.length > 0) upstream.write(head)
            socket.pipe(upstream).pipe(socket)
          })
          const close = () => {
            upgraded.delete(socket)
            socket.destroy()
            upstream.destroy()
          }
          upstream.on("error", close)
          socket.on("error", close)
          upstream.on("close", close)
          socket.on("close", close)
        })
        server.on("error", (error) => resume(Effect.fail(error)))
        server.listen(port, "127.0.0.1", () => {
          const address = server.address() as Net.AddressInfo
          resume(Effect.succeed({
            server,
            upgraded,
            proxy: {
              port: address.port,
              setTargets: (next) => {
                targets = next
              },
              routed
            }
          }))
        })
      }
    ),
    ({ server, upgraded }) =>
      Effect.async<void>((resume) => {
        for (const socket of upgraded) socket.destroy()
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ proxy }) => proxy))
