/**
 * topology/ — pure peer-mesh planning.
 *
 * Does: IPv4 and IPv6 CIDR arithmetic, the peer lists of every member of one network (full mesh between public nodes,
 * hidden nodes and access devices behind a public access node, allowed-ips that never overlap, in both families),
 * and graph export.
 * Does not: allocate subnets, ports or keys (src/plan does), touch the host (netns/ does), read clocks or files.
 */
export * from './cidr.ts';
export * from './cidr6.ts';
export * from './mesh.ts';
export * from './graph.ts';
export * from './types.ts';
