import type * as Http from "node:http"

const MAX_BODY = 64 * 1024

/**
 * How long the servers keep an idle connection: longer than clients keep theirs (undici: 4 s). A server closing a
 * pooled connection just as a client reuses it answers that request with ECONNRESET, which a loaded machine turns
 * from rare into routine.
 *
 * @internal
 */
export const keepAliveTimeout = 30_000

/** @internal */
export const readBody = async (req: Http.IncomingMessage): Promise<string> => {
  const chunks: Array<Buffer> = []
  let size = 0
  for await (const chunk of req) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer)
    size += buffer.length
    if (size > MAX_BODY) throw new Error("request body too large")
    chunks.push(buffer)
  }
  return Buffer.concat(chunks).toString("utf8")
}

/** @internal */
export const htmlEscape = (value: unknown): string => String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
