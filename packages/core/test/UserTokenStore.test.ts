import { UserTokenStore } from "@effect-atm/core"
import { userTokenStoreSuite } from "../../../test/support/userTokenStoreSuite.js"

userTokenStoreSuite("memory", UserTokenStore.layerMemory({ capacity: 100, timeToLive: "1 hour" }), {
  clockExpiry: "1 hour",
  capacity: 100
})
