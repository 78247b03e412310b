import { keyPart, parametersKey, type TokenRequestOptions } from "../AccessToken.js"

/**
 * The cache and store key of a client-credentials token: the client's name and the parameters. Neither part
 * contains `#` (see `keyPart`), so no two (name, parameters) pairs share a key.
 *
 * @internal
 */
export const clientCredentialsKey = (name: string, options: TokenRequestOptions | undefined): string =>
  `${keyPart(name)}#${parametersKey(options)}`

/**
 * The cache key of a user's token: the user's store key (see `CurrentUser.storeKey`) and the parameters.
 *
 * @internal
 */
export const userTokenKey = (storeKey: string, options: TokenRequestOptions | undefined): string =>
  `${storeKey}#${parametersKey(options)}`
