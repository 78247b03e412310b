import type * as Http from "node:http"

const MAX_BODY = 64 * 1024

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
