/**
 * P10p's API, in a child process of its own (`node --import tsx`): the demo API for the parent's embedded provider
 * (`ISSUER`, `JWKS_URI`), as an API runs when deployed — its verification on its own CPU, not the client's. Sends
 * its URL to the parent over IPC and serves until the parent kills it.
 */
import { DemoApi } from "@effect-atm/dev-identity"
import * as Effect from "effect/Effect"

Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const api = yield* DemoApi.make({ issuer: process.env.ISSUER!, jwksUri: process.env.JWKS_URI! })
  process.send?.({ url: api.url })
  yield* Effect.never
})))
