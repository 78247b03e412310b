import type { IdentityProvider } from "@effect-atm/dev-identity"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { type ChildProcess, fork } from "node:child_process"
import { fileURLToPath } from "node:url"
import { redisUrl } from "../support/stores.js"
import type { Command, Report } from "./instance.worker.js"

/**
 * How long one cross-process test may take: processes start, discover the provider and contend on a machine whose
 * CPUs other work shares (a test that takes 25 s alone took 50 s beside a CPU hog). Their assertions are about order,
 * never duration; this bound only stops a hang.
 */
export const crossProcessTimeout = 180_000

const defaultWorker = fileURLToPath(new URL("./instance.worker.ts", import.meta.url))

export interface Instance {
  readonly pid: number
  readonly child: ChildProcess
  /** Sends a command; the answer is the next message. */
  readonly send: (command: Command) => Effect.Effect<Report>
  readonly exited: Promise<NodeJS.Signals | number | null>
  /** What the worker said when ready (`{ ready: pid, ... }`). */
  readonly hello: Record<string, unknown>
}

const nextMessage = (child: ChildProcess) =>
  new Promise<any>((resolve, reject) => {
    const onMessage = (message: unknown) => {
      cleanup()
      resolve(message)
    }
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      cleanup()
      reject(new Error(`instance ${child.pid} exited (${signal ?? code}) before answering`))
    }
    const cleanup = () => {
      child.off("message", onMessage)
      child.off("exit", onExit)
    }
    child.on("message", onMessage)
    child.on("exit", onExit)
  })

/**
 * Forks one application instance (a Node process running `worker` with tsx, `instance.worker.ts` unless given)
 * and waits until it says it is ready; killed if it does not.
 */
export const spawnInstance = async (
  env: Record<string, string>,
  worker: string = defaultWorker,
  onSpawn?: (child: ChildProcess) => void
): Promise<Instance> => {
  const child = fork(worker, [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })
  onSpawn?.(child)
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.once("exit", (code, signal) => resolve(signal ?? code))
  )
  const ready = await nextMessage(child).catch((error) => {
    child.kill("SIGKILL")
    throw error
  })
  if (ready?.ready !== child.pid) {
    child.kill("SIGKILL")
    throw new Error(`instance ${child.pid} did not start: ${JSON.stringify(ready)}`)
  }
  return {
    pid: child.pid!,
    child,
    exited,
    hello: ready,
    send: (command) =>
      Effect.promise(() => {
        const answer = nextMessage(child)
        child.send(command)
        return answer
      })
  }
}

/** Asks an instance to exit (killed if it has not after 3 seconds) and waits until it has. */
export const stopInstance = async (instance: Instance) => {
  if (instance.child.exitCode !== null || instance.child.signalCode !== null) return
  // a child whose channel already closed cannot be asked: the callback keeps EPIPE off the 'error' event
  if (instance.child.connected) instance.child.send("exit", (error) => error && instance.child.kill("SIGKILL"))
  else instance.child.kill("SIGKILL")
  const timer = setTimeout(() => instance.child.kill("SIGKILL"), 3_000)
  await instance.exited
  clearTimeout(timer)
}

/**
 * Starts `count` application instances (Node processes running `instance.worker.ts`, or `worker`, with tsx), each
 * ready to take commands; they are told to exit (or killed) when the scope closes.
 */
export const startInstances = (count: number, env: Record<string, string>, worker: string = defaultWorker) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const children: Array<ChildProcess> = []
      const started = await Promise.allSettled(
        Array.from({ length: count }, () => spawnInstance(env, worker, (child) => children.push(child)))
      )
      const failed = started.find((result) => result.status === "rejected")
      if (failed !== undefined) {
        // no orphans: the ones that did start go too
        for (const child of children) child.kill("SIGKILL")
        throw failed.reason
      }
      return started.map((result) => (result as PromiseFulfilledResult<Instance>).value)
    }),
    (instances) => Effect.promise(() => Promise.all(instances.map(stopInstance)))
  )

/** Sends one command to every instance at once; the answers in instance order. */
export const broadcast = (instances: ReadonlyArray<Instance>, command: Command) =>
  Effect.all(instances.map((instance) => instance.send(command)), { concurrency: "unbounded" })

/** The environment of an instance (see `instance.worker.ts`). */
export const instanceEnvironment = (options: {
  readonly provider: IdentityProvider.IdentityProvider["Type"]
  readonly subject: string
  readonly prefix: string
  readonly key: Redacted.Redacted<string>
  readonly leaseTime?: string | undefined
}): Record<string, string> => ({
  ISSUER: options.provider.issuer,
  SUBJECT: options.subject,
  REDIS_URL: redisUrl,
  REDIS_PREFIX: options.prefix,
  // generous: four processes and the provider share the machine's CPUs with whatever else runs on it
  REDIS_COMMAND_TIMEOUT: "10 seconds",
  ...(options.leaseTime === undefined ? {} : { REDIS_LEASE_TIME: options.leaseTime }),
  TOKEN_ENCRYPTION_KEY: Redacted.value(options.key)
})
