/**
 * Runs the worker example (`npm run demo`): see `Worker.ts` and the README for the environment it reads.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import * as Worker from "./Worker.js"

Worker.main.pipe(Effect.provide(Worker.layer), NodeRuntime.runMain)
