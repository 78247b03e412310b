import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { inspect } from "node:util"

/**
 * Runs an effect with a logger that keeps every line it would print (message, annotations, spans and cause), so a
 * test can assert that no secret ever reached a log.
 */
export const captureLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const lines: Array<string> = []
    const logger = Logger.make((options) => {
      lines.push(Logger.logfmtLogger.log(options), Logger.jsonLogger.log(options))
    })
    return effect.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All),
      Effect.exit,
      Effect.map((exit) => ({ exit, lines }))
    )
  })

/** Every way a value could be rendered into a log line, an error report or a response. */
export const renderings = (value: unknown): Array<string> => {
  const out = [String(value), JSON.stringify(value) ?? "", inspect(value, { depth: 10 })]
  if (value instanceof Error) out.push(value.message, value.stack ?? "")
  return out
}

/** Asserts that none of `secrets` appears in any of `texts`; names the first leak without printing the secret. */
export const assertNoSecrets = (texts: ReadonlyArray<string>, secrets: ReadonlyArray<string>): void => {
  for (const [index, secret] of secrets.entries()) {
    if (secret.length < 8) throw new Error(`secret #${index} is too short to search for reliably`)
    const leak = texts.findIndex((text) => text.includes(secret))
    if (leak !== -1) {
      throw new Error(`secret #${index} appears in rendering #${leak}: ${texts[leak]!.replaceAll(secret, "<SECRET>")}`)
    }
  }
}

/** Asserts two secrets are equal (or not) without ever printing them in a failure message. */
export const assertSameSecret = (actual: string, expected: string, same = true, what = "secret"): void => {
  if ((actual === expected) !== same) {
    throw new Error(`expected the ${what} to be ${same ? "the same as" : "different from"} the other one`)
  }
}
