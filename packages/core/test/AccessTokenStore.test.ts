import { AccessTokenStore } from "@effect-atm/core"
import { AccessTokenStoreSuite } from "@effect-atm/testing"

AccessTokenStoreSuite.run("memory", AccessTokenStore.layerMemory())
