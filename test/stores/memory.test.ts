import { UserTokenStore } from "@effect-atm/core"
import { userTokenStoreSuite } from "./userTokenStoreSuite.js"

userTokenStoreSuite("memory", UserTokenStore.layerMemory({ capacity: 100, timeToLive: "1 hour" }), {
  clockExpiry: "1 hour",
  capacity: 100
})
