import type { Adapter, AdapterPayload } from "oidc-provider"

// Models whose instances belong to a grant and are removed when the grant is revoked (reuse detection, revocation).
const grantable = new Set([
  "AccessToken",
  "AuthorizationCode",
  "RefreshToken",
  "DeviceCode",
  "BackchannelAuthenticationRequest",
  "PreAuthorizedCode"
])

interface Entry {
  readonly payload: AdapterPayload
  readonly expiresAt: number
}

const SWEEP_EVERY = 1024

/**
 * The state of one provider: an unbounded map with per-entry expiry. oidc-provider's own memory adapter is an LRU
 * of 1000 entries shared by every provider in the process, which loses sessions and grants once tests sign in a
 * few hundred users, and it prints a warning.
 *
 * @internal
 */
export class MemoryStore {
  private readonly entries = new Map<string, Entry>()
  private readonly sessionUids = new Map<string, string>()
  private readonly userCodes = new Map<string, string>()
  private readonly grants = new Map<string, Set<string>>()
  private writes = 0

  get size(): number {
    return this.entries.size
  }

  get(key: string): AdapterPayload | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= Date.now()) {
      this.delete(key)
      return undefined
    }
    return entry.payload
  }

  set(model: string, key: string, payload: AdapterPayload, expiresIn: number | undefined): void {
    if (++this.writes % SWEEP_EVERY === 0) this.sweep()
    this.delete(key)
    const expiresAt = typeof expiresIn === "number" ? Date.now() + expiresIn * 1000 : Infinity
    this.entries.set(key, { payload, expiresAt })
    if (model === "Session" && typeof payload.uid === "string") this.sessionUids.set(payload.uid, key)
    if (typeof payload.userCode === "string") this.userCodes.set(payload.userCode, key)
    if (grantable.has(model) && typeof payload.grantId === "string") {
      let members = this.grants.get(payload.grantId)
      if (members === undefined) {
        members = new Set()
        this.grants.set(payload.grantId, members)
      }
      members.add(key)
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key)
    if (entry === undefined) return
    this.entries.delete(key)
    const { grantId, uid, userCode } = entry.payload
    if (typeof uid === "string" && this.sessionUids.get(uid) === key) this.sessionUids.delete(uid)
    if (typeof userCode === "string" && this.userCodes.get(userCode) === key) this.userCodes.delete(userCode)
    if (typeof grantId === "string") {
      const members = this.grants.get(grantId)
      if (members !== undefined) {
        members.delete(key)
        if (members.size === 0) this.grants.delete(grantId)
      }
    }
  }

  keyBySessionUid(uid: string): string | undefined {
    return this.sessionUids.get(uid)
  }

  keyByUserCode(userCode: string): string | undefined {
    return this.userCodes.get(userCode)
  }

  revokeByGrantId(grantId: string): void {
    const members = this.grants.get(grantId)
    if (members === undefined) return
    for (const key of [...members]) this.delete(key)
    this.grants.delete(grantId)
  }

  private sweep(): void {
    const now = Date.now()
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt <= now) this.delete(key)
    }
  }
}

/** @internal */
export const makeAdapterFactory = (store: MemoryStore) => (model: string): Adapter => {
  const keyFor = (id: string) => `${model}:${id}`
  const find = async (key: string | undefined): Promise<AdapterPayload | undefined> => {
    if (key === undefined) return undefined
    const payload = store.get(key)
    return payload === undefined ? undefined : { ...payload }
  }
  return {
    upsert: async (id, payload, expiresIn) => {
      store.set(model, keyFor(id), { ...payload }, expiresIn)
    },
    find: (id) => find(keyFor(id)),
    findByUid: (uid) => find(store.keyBySessionUid(uid)),
    findByUserCode: (userCode) => find(store.keyByUserCode(userCode)),
    consume: async (id) => {
      const payload = store.get(keyFor(id))
      if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000)
    },
    destroy: async (id) => {
      store.delete(keyFor(id))
    },
    revokeByGrantId: async (grantId) => {
      store.revokeByGrantId(grantId)
    }
  }
}
