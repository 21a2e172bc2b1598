// Names and ownership markers of everything the driver creates for one network resource.
// All interface names fit Linux's 15-character limit: the network id is 10 characters [a-z0-9].

export const NETWORK_ID_RE = /^[a-z0-9]{10}$/;

/** The marker written on links we own (interface alias) and on the namespace's loopback. */
export const MARKER_PREFIX = 'zmesh:';
/** nft tables we own are named zmesh_<id> (tenant namespace) or zmesh_h_<id> (host namespace). */
export const NFT_PREFIX = 'zmesh_';
export const NFT_FAMILY = 'inet';

export interface ResourceNames {
  id: string;
  /** Network namespace n-<id>. */
  ns: string;
  /** WireGuard interface w-<id> (created in the host namespace, moved into ns). */
  wg: string;
  /** Workloads' bridge b-<id> in ns. */
  bridge: string;
  /** Host end of the egress veth, ze-<id>, in the host namespace. */
  hostVeth: string;
  /** Tenant end of the egress veth, eg-<id>, in ns. */
  tenantVeth: string;
  /** nft table in ns. */
  nftTenant: string;
  /** nft table in the host namespace (egress NAT and isolation). */
  nftHost: string;
  /** Ownership marker "zmesh:<id>". */
  marker: string;
}

export function isNetworkId(id: unknown): id is string {
  return typeof id === 'string' && NETWORK_ID_RE.test(id);
}

export function namesFor(id: string): ResourceNames {
  if (!isNetworkId(id)) throw new TypeError(`network id must be 10 characters [a-z0-9], got ${JSON.stringify(id)}`);
  return {
    id,
    ns: `n-${id}`,
    wg: `w-${id}`,
    bridge: `b-${id}`,
    hostVeth: `ze-${id}`,
    tenantVeth: `eg-${id}`,
    nftTenant: `${NFT_PREFIX}${id}`,
    nftHost: `${NFT_PREFIX}h_${id}`,
    marker: `${MARKER_PREFIX}${id}`,
  };
}

/** The network id in a name we generate ("n-<id>", "w-<id>", "ze-<id>", "zmesh_h_<id>", ...), or null. */
export function idFromName(name: string): string | null {
  const m = /^(?:n-|w-|b-|ze-|eg-|zmesh_h_|zmesh_)([a-z0-9]{10})$/.exec(name);
  return m ? m[1] : null;
}

/** The network id in an ownership marker, or null. */
export function idFromMarker(alias: string | null | undefined): string | null {
  if (!alias || !alias.startsWith(MARKER_PREFIX)) return null;
  const id = alias.slice(MARKER_PREFIX.length);
  return isNetworkId(id) ? id : null;
}
