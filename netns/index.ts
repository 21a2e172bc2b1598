/**
 * netns — every Linux side effect for zmesh networks.
 *
 * Does: one command runner (execa; argv only, LC_ALL=C, secrets on stdin, commands counted and recordable);
 * pure builders (`ip -batch` lines, `wg set` argv, nft scripts) and parsers (`ip -json`, `wg show dump`,
 * `nft -j`); WireGuard backends (kernel, wireguard-go) with detection; and the network-resource driver:
 * apply(desired) = read → diff → the smallest change, per resource (namespace n-<id>, bridge b-<id>,
 * WireGuard w-<id>, routes, MTU and MSS clamping, egress veth + NAT to the outside only, isolation rules), removal of resources
 * no longer desired, drift repair, a report of the state reached, and a listing of everything it owns.
 *
 * Does not: plan anything (subnets, keys, peers come from src/plan), hold agent logic (when to apply, what was
 * applied), or touch anything without its ownership marker. Never imports src/agent, src/cli or runtime/.
 * See docs/netns.md.
 */
export type {
  DesiredResource,
  ApplyReport,
  ResourceReport,
  RemovalReport,
  Failure,
  ActualResource,
  ActualLink,
  ActualRoute,
  ActualPeer,
  ActualWireguard,
  ActualDaemon,
  OwnedThing,
  BackendKind,
  BackendChoice,
} from './types.ts';
export { Driver, createDriver, apply, readActual, listOwned, type DriverOptions, type ApplyOptions, type NodeIdentity } from './driver.ts';
export {
  ProcessRunner,
  TallyRunner,
  CommandError,
  inNetns,
  type Runner,
  type RunOptions,
  type RunResult,
  type RecordedCommand,
  type SpawnOptions,
  type DaemonHandle,
  type CommandCounts,
} from './runner.ts';
export { detectBackend, makeBackend, KernelBackend, UserspaceBackend, Daemons, type WgBackend, type BackendOptions } from './wireguard.ts';
export * from './parse.ts';
export * from './build.ts';
export { diffPeers, diffWireguard, diffLink, diffRoutes, nftIsCurrent, ROAM_WINDOW_SEC, type WgDiff } from './diff.ts';
export { layoutFor, validateDesired, overlayMtu, WG_OVERHEAD, BLOCKED_SET_V4, BLOCKED_SET_V6, type Layout, type DesiredLink, type DesiredRoute, type DesiredPeer } from './layout.ts';
export { namesFor, idFromName, idFromMarker, isNetworkId, NETWORK_ID_RE, MARKER_PREFIX, NFT_PREFIX, type ResourceNames } from './names.ts';
export { readHost, readHostRoutes, readNs, readWg, readNft, type HostState, type NsState } from './state.ts';
export { allocateEgressBlock, canonicalCidr, canonicalEndpoint } from './ip.ts';
export { egressBlocked, checkEgressCidrs, SPECIAL_V4, SPECIAL_V6, type EgressPolicy, type EgressFacts, type BlockedSets } from './egress.ts';
export {
  DEFAULT_TUNING,
  DEFAULT_TUNING_BATCHED,
  NO_TUNING,
  BATCHED_SINCE,
  defaultTuning,
  parseWireguardGoVersion,
  resolveTuning,
  validateTuning,
  SocketTuner,
  readUdpSockets,
  parseProcNetUdp,
  socketBufferArgv,
  parseSocketBuffers,
  type Tuning,
  type WireguardGoBuild,
  type SocketTuning,
  type UdpSocket,
  type DaemonSocket,
} from './tuning.ts';
