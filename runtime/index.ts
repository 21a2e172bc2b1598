/**
 * runtime — compute and storage for a node: the blueprint's workloads as containers attached to their tenant
 * networks, and its volumes as size-limited btrfs subvolumes.
 *
 * Does: Docker containers through dockerode with no Docker networking (NetworkMode none), labels, CPU, memory,
 * disk and pids limits, a minimal capability set and no-new-privileges (drift replaces the container);
 * attachment after CNI's ADD / DEL / CHECK / GC (a veth from the tenant namespace's bridge b-<id> into the
 * container as eth0 with the planned address and a default route via the subnet gateway, the bridge's MTU; the
 * port bound to its planned MAC and address by a bridge nft table of its own, so it cannot send as another);
 * self-healing (exited, killed, OOM-killed or vanished containers come back with the same address and data,
 * with a crash-loop backoff bounded by the reconcile interval; the reason is reported); a storage pool (btrfs
 * on a disk, or on a loop-mounted image in the state directory) with one qgroup-limited subvolume per volume;
 * an offline base image (busybox-static) for engines without a registry; log streams.
 *
 * Does not: plan addresses (src/plan does), build tenant namespaces or bridges (netns/ does; runtime only adds
 * veths to them), decide what a node should run (the agent hands it the desired workloads and volumes), keep
 * its own database (the agent's store backs the RuntimeStore interface), or touch containers, veths or
 * subvolumes without its ownership marks (owner and node labels, the zmesh-wl: alias, recorded volumes).
 * Never imports src/agent, src/cli, src/admin or labs/. See docs/runtime.md.
 */
export type { DesiredWorkload, DesiredVolume, Attachment, ExitInfo, RuntimeEvent, RuntimeReport, WorkloadView, VolumeView, WorkloadStateName } from './types.ts';
export { Runtime, DEFAULT_DOCKER_SOCKET, type RuntimeOptions, type Desired } from './runtime.ts';
export { Compute, exitReason, MIN_ENGINE_MEMORY, type ComputeOptions, type ComputeResult } from './compute.ts';
export { Attacher, addressMac, compareAttachment, containerAddLines, containerAddLines6, IPV6_SYSCTL, tenantAddLines, parseLinks, parseRoutes, inContainer, inTenantNs, type AttachRequest, type AttachPort, type LiveLink, type LiveRoute } from './attach.ts';
export { DockerEngine, createOptions, securityDrift, containerProcsFile, killContainerProcesses, WORKLOAD_CAPS, PIDS_LIMIT, NO_NEW_PRIVILEGES, NO_STORAGE_OPT, type Engine, type ContainerSpec, type ContainerSecurity, type ContainerState, type ContainerSummary, type EngineEvent } from './engine.ts';
export { EtcFiles, etcContents, ETC_TARGETS, type EtcPort, type EtcMount } from './etc.ts';
export { L2_FAMILY, L2_TABLE, L2_SET, L2_CHAIN, L2_HASH, L2_FINGERPRINT, l2TableText, l2ReplaceText, l2DeleteTableText, l2ElementText, l2Plan, parseL2, compareBinding, type PortBinding, type L2State } from './l2.ts';
export { Storage, parseQgroups, findMount, DEFAULT_POOL_SIZE, MIN_POOL_SIZE, type StorageOptions, type StorageResult, type QgroupRow } from './storage.ts';
export { MemoryRuntimeStore, type RuntimeStore, type WorkloadRecord, type VolumeRecord } from './store.ts';
export { LogDemuxer, parseFrames, type LogFrame } from './demux.ts';
export { BASE_IMAGE, baseImageTar, baseRootfs, importImage, parseApplets, tarArchive, tarHeader, DEFAULT_APPLETS, type TarEntry } from './image.ts';
export * from './names.ts';
