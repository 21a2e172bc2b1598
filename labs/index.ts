/**
 * labs — multi-node test beds on one machine, built for real: network namespaces, real `zmesh agent`s,
 * real WireGuard (wireguard-go here), real NAT, real containers.
 *
 * Does: parse lab specs (labs/README.md); build an "internet" namespace (one bridge, 203.0.113.0/24; with
 * `underlay: ipv6 | dual` 2001:db8:cb00:7100::/64 instead or besides), NAT routers (nftables SNAT with conntrack;
 * NAT66 on IPv6) and, per node or access device, a network namespace plus a mount
 * namespace with a private /run held by a small holder process; run one agent per node with its own state
 * directory and admin socket in the lab directory; for nodes hosting workloads or volumes, a private dockerd
 * inside the node's namespaces with the offline base image (the agent runs the containers and the storage
 * pool); make node identities, tenant keys, signed blueprints and plans, and push each node its part (the
 * embedded control plane); bring access devices up with `wg-quick`; run an identity-checked connectivity
 * matrix (ping + TCP to an echo service in every tenant namespace and device, and to every workload's page, in
 * both families on dual-stack networks; names asked at each node's resolver);
 * shape underlays (delay, loss, rate); inject faults (cut, restore, loss, delay, kill-agent, restart-agent,
 * reboot); draw the lab with graphviz; and tear everything down by namespace inode, container cgroup and PID,
 * also after a crash (loop devices and cgroups included).
 *
 * Does not: pull images (a lab engine has only the base image); touch the host's root namespace beyond
 * named namespace handles in /run/netns and its containers' cgroups (no addresses, routes or links there);
 * send traffic off the machine; signal any process it did not find inside a lab namespace or lab cgroup.
 */
export { parseLabSpec, loadLabSpec, workloadNodes, type LabSpec, type NodeSpec, type NatSpec, type TenantSpec, type DeviceSpec, type Shaping } from './spec.ts';
export { layoutFor, labPrefix, LAB_NS_PREFIX, type Layout, type HostLayout, type NatLayout } from './layout.ts';
export { labRoot, labDir, readState, nodePaths, type LabState } from './state.ts';
export {
  labUp,
  labMatrix,
  labStatus,
  labExecArgv,
  labSocket,
  labFault,
  labGraph,
  labWaitGreen,
  openLab,
  FAULTS,
  type FaultKind,
  type UpSummary,
  type UpOptions,
  type HostStatus,
} from './lab.ts';
export { downLab, downAll, downAndCheck, labProcesses, processesOf, leftovers, loopsUnder, type DownReport } from './cleanup.ts';
export { runMatrix, judge, parseProbe, matrixOk, type PairResult } from './matrix.ts';
export { endpointsOf, workloadPids, workloadText, type Endpoint } from './endpoints.ts';
export { dockerPaths, dockerClient, dockerdAlive, workloadPid, LAB_POOL_SIZE } from './docker.ts';
export { labToDot } from './graph.ts';
export { controlPlaneStatus, ensureControlPlane, killMember, startMember, memberAlive, stopController, startController, controllerAlive, readEtcd, submitToEtcd, awaitEtcdPlans, etcdUrls, ETCD_MEMBERS } from './etcd.ts';
