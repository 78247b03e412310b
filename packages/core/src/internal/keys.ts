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

/**
 * The cache and store key of an exchanged token: the target's name, the user's store key, the parameters and the
 * generation of the subject token (a digest of it), so that a refreshed subject token leads to a new exchange.
 * The `~x` prefix and the four `#` keep it apart from client-credentials keys (one `#`) in a shared store.
 *
 * @internal
 */
export const exchangedTokenKey = (
  target: string,
  storeKey: string,
  options: TokenRequestOptions | undefined,
  generation: string
): string => `~x#${keyPart(target)}#${storeKey}#${parametersKey(options)}#${generation}`
