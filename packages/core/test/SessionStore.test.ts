import { SessionStore } from "@effect-atm/core"
import { SessionStoreSuite } from "@effect-atm/testing"

SessionStoreSuite.run("memory", SessionStore.layerMemory())
