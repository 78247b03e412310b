// @effect-atm/store-sql for a PostgreSQL user, who installs @effect/sql-pg and not @effect/sql-sqlite-node (native
// better-sqlite3): the package loads, the SQLite layer fails with a TokenStoreError that says what to install, and the
// PostgreSQL layer loads its driver (then finds no server on port 1, as intended). Run by scripts/consumer-test.sh.
import { TokenEncryption } from "@effect-atm/core"
import { SqlStore } from "@effect-atm/store-sql"
import { Effect, Layer, Redacted } from "effect"

const buildError = (layer) =>
  Effect.flip(Effect.scoped(Layer.build(layer.pipe(Layer.provide(TokenEncryption.layerPlaintext)))))

const main = Effect.gen(function*() {
  const sqlite = yield* buildError(SqlStore.layerSqlite({ filename: ":memory:" }))
  if (sqlite._tag !== "TokenStoreError" || !sqlite.message.includes("npm install @effect/sql-sqlite-node")) {
    return yield* Effect.dieMessage(`SqlStore.layerSqlite without its driver: unexpected ${sqlite}`)
  }
  console.log(`SqlStore.layerSqlite without its driver: ${sqlite.message}`)

  const pg = yield* buildError(
    SqlStore.layerPg({ url: Redacted.make("postgres://nobody@127.0.0.1:1/none"), connectTimeout: "2 seconds" })
  )
  if (pg._tag !== "TokenStoreError" || pg.operation === "start") {
    return yield* Effect.dieMessage(`SqlStore.layerPg did not load @effect/sql-pg: ${pg}`)
  }
  console.log(`SqlStore.layerPg loaded @effect/sql-pg (then: ${pg.operation} failed, no server on port 1)`)
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
