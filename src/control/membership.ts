// Membership and hold-down decisions, and rebalancing. Pure: the clock comes in as `now` (ms).
//
// A node is a member from its first registration on. Its lease expiring does not remove it at once:
//   live       registered (lease alive)                          planned as it registered
//   grace      lease gone for less than `graceMs`                still planned as it registered (a blip)
//   held       lease gone for `graceMs` … `holdDownMs`           planned as a HIDDEN node: it keeps its subnet,
//              port and keys, is nobody's access node any more, and its own hidden nodes move to live public ones
//   dropped    lease gone for `holdDownMs` or more               out of the plans (subnet and port freed)
// A node that comes back is live again at once; hidden nodes that moved away stay where they are (no flapping)
// until an explicit rebalance.
import type { InventoryNode } from '../plan/inventory.ts';
import type { AnyPlan } from '../plan/types.ts';

/** What a node writes under its lease at nodes/<id>. */
export interface Registration {
  id: string;
  /** X25519 identity public key (base64). */
  publicKey: string;
  endpoints: string[];
  reservedPorts: number[];
  agentVersion?: string;
}

/** The controller's record of a member at members/<id> (survives the node's lease). */
export interface MemberRecord {
  id: string;
  publicKey: string;
  endpoints: string[];
  reservedPorts: number[];
  live: boolean;
  /** ms: when it last became live (live) or lost its lease (not live). */
  since: number;
}

export type MemberState = 'live' | 'grace' | 'held' | 'dropped';

export interface HoldDown {
  graceMs: number;
  holdDownMs: number;
}

export interface MembershipDecision {
  /** Member records to keep (written when changed); dropped members are absent. */
  members: Map<string, MemberRecord>;
  states: Map<string, MemberState>;
  /** Inventory for planning: live and grace nodes as registered, held nodes without endpoints. */
  inventory: InventoryNode[];
  /** Nodes whose parts the controller writes (live and grace). */
  reachable: Set<string>;
  /** When the next state change by the clock alone happens (ms), or null. */
  nextAt: number | null;
}

function sameInfo(a: MemberRecord, r: Registration): boolean {
  return (
    a.publicKey === r.publicKey &&
    JSON.stringify(a.endpoints) === JSON.stringify(r.endpoints) &&
    JSON.stringify(a.reservedPorts) === JSON.stringify(r.reservedPorts)
  );
}

export function stateOf(m: MemberRecord, now: number, hd: HoldDown): MemberState {
  if (m.live) return 'live';
  const down = now - m.since;
  if (down < hd.graceMs) return 'grace';
  if (down < hd.holdDownMs) return 'held';
  return 'dropped';
}

/** Folds the current registrations into the member records at time `now`. */
export function decideMembership(previous: Map<string, MemberRecord>, registrations: Map<string, Registration>, now: number, hd: HoldDown): MembershipDecision {
  const members = new Map<string, MemberRecord>();
  const states = new Map<string, MemberState>();
  let nextAt: number | null = null;
  const soon = (t: number) => {
    if (t > now && (nextAt === null || t < nextAt)) nextAt = t;
  };
  const ids = [...new Set([...previous.keys(), ...registrations.keys()])].sort();
  for (const id of ids) {
    const prev = previous.get(id);
    const reg = registrations.get(id);
    let m: MemberRecord;
    if (reg) {
      m =
        prev && prev.live && sameInfo(prev, reg)
          ? prev
          : { id, publicKey: reg.publicKey, endpoints: [...reg.endpoints], reservedPorts: [...reg.reservedPorts], live: true, since: prev?.live ? prev.since : now };
    } else if (prev!.live) {
      m = { ...prev!, live: false, since: now };
    } else m = prev!;
    const s = stateOf(m, now, hd);
    if (s === 'dropped') continue;
    if (!m.live) {
      soon(m.since + hd.graceMs);
      soon(m.since + hd.holdDownMs);
    }
    members.set(id, m);
    states.set(id, s);
  }
  const inventory: InventoryNode[] = [];
  const reachable = new Set<string>();
  for (const [id, m] of members) {
    const s = states.get(id)!;
    const asRegistered = s === 'live' || s === 'grace';
    if (asRegistered) reachable.add(id);
    inventory.push({ id, publicKey: m.publicKey, endpoints: asRegistered ? [...m.endpoints] : [], reservedPorts: [...m.reservedPorts] });
  }
  return { members, states, inventory, reachable, nextAt };
}

/**
 * Rebalancing: which hidden nodes to release from their access node so that the planner puts them on the
 * least loaded public nodes. Per network, an access node with more than ceil(hidden / public) hidden nodes
 * behind it releases the surplus (the last by id); nothing moves when the load is already even.
 */
export function rebalanceRelease(plan: AnyPlan, publicNodes: Set<string>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const n of plan.networks) {
    const publics = n.resources.filter((r) => !r.hidden && publicNodes.has(r.node)).map((r) => r.node);
    const hidden = n.resources.filter((r) => r.hidden && r.accessNode);
    if (!publics.length || !hidden.length) continue;
    const target = Math.ceil(hidden.length / publics.length);
    const behind = new Map<string, string[]>(publics.map((p) => [p, []]));
    for (const h of hidden) behind.get(h.accessNode!)?.push(h.node);
    const release = new Set<string>();
    for (const list of behind.values()) {
      list.sort();
      for (const id of list.slice(target)) release.add(id);
    }
    if (release.size) out.set(n.name, release);
  }
  return out;
}

/** A copy of `plan` where the released hidden nodes have no access node (the planner picks one anew). */
export function releaseAccess<P extends AnyPlan>(plan: P, release: Map<string, Set<string>>): P {
  return {
    ...plan,
    networks: (plan.networks as P['networks'][number][]).map((n) => {
      const r = release.get(n.name);
      if (!r) return n;
      return { ...n, resources: n.resources.map((x) => (r.has(x.node) ? { ...x, accessNode: null } : x)) };
    }),
  };
}
