import type { Vitest } from "@effect/vitest"

/**
 * The test function with a timeout of the suite's own: a user's vitest may default to 5 seconds, too short for a
 * store over the network.
 *
 * @internal
 */
export const withTimeout = <R>(test: Vitest.Test<R>, timeout: number): Vitest.Test<R> => (name, self, options) =>
  test(name, self, options ?? timeout)

let serial = 0

/**
 * A string no other test, process or run produces, to key what a test writes in a store that others may share.
 *
 * @internal
 */
export const unique = (label: string): string =>
  `${label}-${process.pid}-${Date.now().toString(36)}-${++serial}-${Math.random().toString(36).slice(2, 8)}`
