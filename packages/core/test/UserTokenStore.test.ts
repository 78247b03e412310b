import { UserTokenStore } from "@effect-atm/core"
import { UserTokenStoreSuite } from "@effect-atm/testing"

UserTokenStoreSuite.run("memory", UserTokenStore.layerMemory({ capacity: 100, timeToLive: "1 hour" }), {
  clockExpiry: "1 hour",
  capacity: 100
})
