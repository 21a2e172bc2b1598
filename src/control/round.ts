// One controller round's decisions, as a pure function (issue #18; as Kilo keeps NewTopology pure): from what the
// controller has read (registrations vetted against the enrollments, stored member records, submitted blueprints,
// the stored plans and parts) and the clock, it computes the member records, the plans, every node's part, the
// envelope copies and grants, and the etcd operations that write them. The Controller (controller.ts) reads,
// calls planRound, writes what it returns in order, and logs its warnings. No etcd, no clock, no randomness that
// is not injected.
import { verifySigned } from '../blueprint/index.ts';
import type { Blueprint, SignedBlueprint } from '../blueprint/types.ts';
import type { Key } from '../crypto/keys.ts';
import type { RandomSource } from '../crypto/rng.ts';
import { ValidationError, ZmeshError, type Problem } from '../errors.ts';
import type { InventoryNode } from '../plan/inventory.ts';
import { planCompact } from '../plan/planner.ts';
import type { CompactPlan, NetworkPlan, Resource } from '../plan/types.ts';
import { assemblePlan, diffEntries, parseHead, planEntries, planPartEntries, type Entries, type Op } from './entries.ts';
import { blueprintId, type Keys } from './keys.ts';
import { decideMembership, rebalanceRelease, releaseAccess, type HoldDown, type MemberRecord, type MembershipDecision, type Registration } from './membership.ts';
import { signPartEntries } from './signed.ts';
import { currentDirectory, directoryHead, directoryOps, nextDirectories, type Directory } from './directory.ts';
import { directoryEntries } from '../plan/derive.ts';
import { ROSTER_HINT, rosterEntries, rosterHints } from './roster.ts';

export interface BlueprintStatus {
  version: number | null;
  generation: number | null;
  /** The submitted envelope is refused (signature, tenant, version, device keys) or does not plan; or a network of
   *  it collides with another blueprint's (E_NETWORK_ID_COLLISION: planned, without direct paths). */
  problems: Problem[];
}

export interface Current {
  /** The compact plan: peers are derived (src/plan/derive.ts) when the parts are written, never kept. */
  plan: CompactPlan;
  envelope: SignedBlueprint;
}

/** Every node a blueprint lists in any network. */
function listedNodes(bp: Blueprint): Set<string> {
  return new Set(bp.networks.flatMap((n) => n.nodes));
}

/** The blueprint as planned now: each network over the members only (the signed one is untouched). */
function overMembers(bp: Blueprint, members: Set<string>): Blueprint {
  return { ...bp, networks: bp.networks.map((n) => ({ ...n, nodes: n.nodes.filter((x) => members.has(x)) })) };
}

/** Problems that keep a submitted envelope from being planned in etcd mode (beyond the signature). */
export function etcdModeProblems(bp: Blueprint): Problem[] {
  const out: Problem[] = [];
  bp.networks.forEach((n, i) =>
    n.access.forEach((d, j) => {
      if (!d.publicKey) {
        out.push({
          code: 'E_DEVICE_KEY_REQUIRED',
          path: `networks[${i}].access[${j}].publicKey`,
          message: `access device ${d.name} has no publicKey; with etcd the controller never generates device private keys (they would have to be stored)`,
          hint: 'generate the key pair on the device (wg genkey | wg pubkey) and put its public key in the blueprint',
        });
      }
    }),
  );
  return out;
}

/** Verifies a submitted envelope against the tenant key and the etcd-mode rules; returns the blueprint. */
export function checkSubmitted(envelope: unknown, tenantKey: string | undefined, planned: SignedBlueprint | undefined): Blueprint {
  const bp = verifySigned(envelope);
  const problems: Problem[] = [];
  if (!tenantKey) problems.push({ code: 'E_TENANT_UNTRUSTED', path: 'tenant', message: `tenant ${bp.tenant} is not registered with the controller`, hint: 'add it: zmesh controller tenant add NAME --key PUBKEY' });
  else if (tenantKey !== (envelope as SignedBlueprint).signature.publicKey) {
    problems.push({ code: 'E_TENANT_KEY', path: 'signature.publicKey', message: `signed by a key that is not tenant ${bp.tenant}'s`, hint: "sign with the tenant's own key" });
  }
  if (planned) {
    const pv = planned.blueprint.version;
    if (bp.version < pv || (bp.version === pv && (envelope as SignedBlueprint).signature.signature !== planned.signature.signature)) {
      problems.push({ code: 'E_REPLAY', path: 'version', message: `version ${bp.version} is not newer than version ${pv} already planned`, hint: 'raise the version and sign again' });
    }
  }
  problems.push(...etcdModeProblems(bp));
  if (problems.length) throw new ValidationError(problems, 'blueprint');
  return bp;
}

type RetainedNet = { header: Omit<NetworkPlan, 'resources' | 'access'>; resource: Omit<Resource, 'peers'> };

/** blueprint id → node → network → the network header and resource in that node's stored part. */
function retainedResources(parts: Map<string, Entries>): Map<string, Map<string, Map<string, RetainedNet>>> {
  const out = new Map<string, Map<string, Map<string, RetainedNet>>>();
  for (const [pid, entries] of parts) {
    const [node, tenant, name] = pid.split('/');
    for (const [suffix, text] of entries) {
      if (!suffix.startsWith('net/')) continue;
      try {
        const { resource, name: net, id, ipRange, subnetPrefix, egress } = JSON.parse(text) as NetworkPlan & { resource: Omit<Resource, 'peers'> };
        if (!resource || resource.node !== node || !Number.isInteger(resource.listenPort)) continue;
        const bid = blueprintId(tenant, name);
        let byNode = out.get(bid);
        if (!byNode) out.set(bid, (byNode = new Map()));
        let nets = byNode.get(node);
        if (!nets) byNode.set(node, (nets = new Map()));
        nets.set(net, { header: { name: net, id, ipRange, subnetPrefix, egress }, resource });
      } catch {
        // an unreadable entry is rewritten by the next change
      }
    }
  }
  return out;
}

/**
 * The previous plan, plus the resources members still hold in parts left on them while they were out of the plan
 * (a node back after the hold-down): the planner then gives them back their subnet, port and keys when the subnet
 * is still free (a subnet someone holds now is never taken back).
 */
function withRetained(plan: CompactPlan, retained: Map<string, Map<string, RetainedNet>> | undefined, members: Set<string>): CompactPlan {
  if (!retained) return plan;
  const networks = plan.networks.map((n) => ({ ...n, resources: [...n.resources] }));
  for (const [node, nets] of retained) {
    if (!members.has(node)) continue;
    for (const [name, r] of nets) {
      let n = networks.find((x) => x.name === name);
      if (!n) networks.push((n = { ...r.header, resources: [], access: [] }));
      // Never at the expense of a member that holds the subnet now.
      const taken = n.resources.some((x) => x.node === node || x.subnet === r.resource.subnet) || n.access.some((d) => d.subnet === r.resource.subnet);
      if (!taken) n.resources.push({ ...r.resource, endpoint: null });
    }
  }
  return { ...plan, networks };
}


export interface RoundInput {
  keys: Keys;
  /** The round's clock reading (ms). */
  now: number;
  hd: HoldDown;
  random: RandomSource;
  /** An operator asked to rebalance hidden nodes over the live public nodes. */
  rebalance: boolean;
  /** Registrations signed by their node's pinned key, and stored member records whose key is still pinned. */
  registrations: Map<string, Registration>;
  members: Map<string, MemberRecord>;
  /** The member records as stored now (to write only the changed ones). */
  storedMembers: Map<string, MemberRecord>;
  /** tenant → its registered ed25519 key. */
  tenants: Map<string, string>;
  /** blueprint id → the envelope submitted for it (unverified). */
  submitted: Map<string, unknown>;
  /** blueprint id → its stored plan entries; part id ("node/tenant/name") → its stored part entries. */
  planMirror: Map<string, Entries>;
  partMirror: Map<string, Entries>;
  /** Envelope copies stored now (keys). */
  envelopes: ReadonlySet<string>;
  /** networkId → its direct-peer directories as stored (normally one epoch). */
  directoryMirror: ReadonlyMap<string, Directory[]>;
  /** networkId → its rosters as stored (normally one epoch). */
  rosterMirror: ReadonlyMap<string, Directory[]>;
  /** Nodes with a good enrollment (a node without one has been revoked). */
  enrolled: ReadonlySet<string>;
  /** Signs every part head when present. */
  signingKey: Key | null;
  /**
   * Parts whose mirror entry this controller signed and wrote itself (not read back from etcd, where a writer
   * could have altered a head): when unchanged, their signed head is reused instead of signed again.
   */
  ownHeads?: ReadonlySet<string>;
}

export interface RoundPlan {
  dec: MembershipDecision;
  statuses: Record<string, BlueprintStatus>;
  /** Blueprints whose plan changed. */
  replanned: string[];
  /** Blueprints removed (submitted no more). */
  removed: Set<string>;
  /** The plans after this round. */
  current: Map<string, Current>;
  /** Written first, in one go: member records, plans (one group per blueprint), new envelope copies. */
  memberOps: Op[];
  planOps: Op[][];
  envelopeOps: Op[];
  /** Each node's part changes (removals before updates), one group per node, sorted by node. */
  partGroups: Op[][];
  /** Part id → its entries after this round (undefined: deleted). */
  desired: Map<string, Entries | undefined>;
  /** node → its read grants: the envelope keys its parts point to and, for each network it is hidden in, the
   *  current epoch's keys: the candidate table's pointer and table, and the directory prefix (directory/<id>/<epoch>/). */
  wantGrants: Map<string, Set<string>>;
  /** networkId → the nodes hidden in it (who is in its candidate table). */
  hiddenMembers: Map<string, Set<string>>;
  /** Envelope copies to delete last (no head points to them). */
  staleEnvelopes: Op[];
  /** Direct-peer directories and rosters: entries written before the parts that name them, old ones deleted after. */
  directoryPuts: Op[];
  directoryDeletes: Op[];
  /** networkId → its directory after this round. */
  directories: Map<string, Directory>;
  /** networkId → its roster after this round. */
  rosters: Map<string, Directory>;
  /** Parts whose head this round signed (or kept as this controller signed it): not copies of stored ones. */
  signedParts: Set<string>;
  /** What the controller should log (stored plans it could not read or derive parts from). */
  warnings: { fields: Record<string, unknown>; message: string }[];
}

/** Network ids that more than one blueprint's plan has: networkId → those blueprints (sorted). */
export function collidedNetworks(plans: [string, Pick<CompactPlan, 'networks'>][]): Map<string, string[]> {
  // Owners are (blueprint, network name): two networks of ONE blueprint with one id collide too (a tenant can
  // search its own names for a pair: 2^25 hashes), and would share a roster and a directory.
  const owners = new Map<string, Map<string, string>>();
  for (const [id, plan] of plans) {
    for (const n of plan.networks) {
      let o = owners.get(n.id);
      if (!o) owners.set(n.id, (o = new Map()));
      o.set(`${id}\n${n.name}`, id);
    }
  }
  return new Map([...owners].filter(([, o]) => o.size > 1).map(([net, o]) => [net, [...new Set(o.values())].sort()]));
}

/** One planning round's decisions: membership → plans → parts → operations. Pure. */
export function planRound(input: RoundInput): RoundPlan {
  const steps = roundSteps(input);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * planRound, giving the event loop a turn (`breathe`) between parts: a round over thousands of nodes takes seconds,
 * longer than the leadership lease (5 s) could go without a keep-alive — the controller lost its lease in every
 * such round and never wrote one. The same decisions as planRound: the steps are the same generator.
 */
export async function planRoundSliced(input: RoundInput, breathe: () => Promise<void>): Promise<RoundPlan> {
  const steps = roundSteps(input);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await breathe();
  }
}

function* roundSteps(input: RoundInput): Generator<void, RoundPlan> {
  const k = input.keys;
  const warnings: RoundPlan['warnings'] = [];

  // 1. Membership: only nodes whose signed registration carries their pinned identity key.
  const dec = decideMembership(input.members, input.registrations, input.now, input.hd);
  const memberOps: Op[] = [];
  for (const [id, m] of dec.members) {
    const v = JSON.stringify(m);
    if (JSON.stringify(input.storedMembers.get(id)) !== v) memberOps.push({ type: 'put', key: k.member(id), value: v });
  }
  for (const id of input.storedMembers.keys()) if (!dec.members.has(id)) memberOps.push({ type: 'delete', key: k.member(id) });
  const memberSet = new Set(dec.members.keys());
  const livePublic = new Set(dec.inventory.filter((n) => n.endpoints.length > 0).map((n) => n.id));

  // 2. Plans, blueprint by blueprint, each with the other blueprints' ports reserved.
  const current = new Map<string, Current>();
  for (const [id, entries] of input.planMirror) {
    const [tenant, name] = id.split('/');
    try {
      const a = assemblePlan(tenant, name, entries);
      if (a) current.set(id, a);
    } catch (e) {
      warnings.push({ fields: { blueprint: id, err: (e as Error).message }, message: 'controller: unreadable stored plan ignored' });
    }
  }
  const statuses: Record<string, BlueprintStatus> = {};
  const ids = [...new Set([...input.submitted.keys(), ...current.keys()])].sort();
  const removed = new Set(ids.filter((id) => !input.submitted.has(id)));
  const planOps: Op[][] = [];
  const replanned: string[] = [];
  // node → blueprint → listen ports it uses there (kept up to date as blueprints are planned).
  const ports = new Map<string, Map<string, number[]>>();
  const setPorts = (id: string, plan: CompactPlan | null) => {
    for (const m of ports.values()) m.delete(id);
    if (!plan) return;
    for (const n of plan.networks) {
      for (const r of n.resources) {
        let m = ports.get(r.node);
        if (!m) ports.set(r.node, (m = new Map()));
        let l = m.get(id);
        if (!l) m.set(id, (l = []));
        l.push(r.listenPort);
      }
    }
  };
  for (const [id, c] of current) if (!removed.has(id)) setPorts(id, c.plan);
  // What nodes outside a plan still run: the parts left on them (a dropped node's part is kept).
  const retained = retainedResources(input.partMirror);
  const inPlan = (id: string, node: string) => ports.get(node)?.has(id) ?? false;
  const portsOn = (node: string, except: string): number[] => {
    const out: number[] = [];
    for (const [id, l] of ports.get(node) ?? []) if (id !== except) out.push(...l);
    for (const [id, byNode] of retained) {
      if (id === except || removed.has(id) || inPlan(id, node)) continue;
      for (const r of byNode.get(node)?.values() ?? []) out.push(r.resource.listenPort);
    }
    return out;
  };
  for (const id of ids) {
    if (removed.has(id)) {
      planOps.push(diffEntries(k.plans() + id + '/', input.planMirror.get(id), undefined, 'meta'));
      current.delete(id);
      continue;
    }
    const prev = current.get(id);
    const status: BlueprintStatus = { version: prev?.plan.version ?? null, generation: prev?.plan.generation ?? null, problems: [] };
    statuses[id] = status;
    const raw = input.submitted.get(id);
    const [tenant] = id.split('/');
    const candidates: SignedBlueprint[] = [];
    try {
      const bp = checkSubmitted(raw, input.tenants.get(tenant), prev?.envelope);
      if (blueprintId(bp.tenant, bp.name) !== id) {
        throw new ZmeshError('E_BLUEPRINT_KEY', `the blueprint at ${id} is ${bp.tenant}/${bp.name}`, { hint: 'store a blueprint under its own tenant/name' });
      }
      candidates.push(raw as SignedBlueprint);
    } catch (e) {
      status.problems.push(...(e instanceof ZmeshError ? e.problems : [{ code: 'E_INTERNAL', path: '', message: String(e), hint: '' }]));
    }
    if (prev && !candidates.some((c) => c.signature.signature === prev.envelope.signature.signature)) candidates.push(prev.envelope);
    yield;
    for (const envelope of candidates) {
      const bp = envelope.blueprint;
      const inventory: InventoryNode[] = dec.inventory.map((n) => ({ ...n, reservedPorts: [...new Set([...n.reservedPorts, ...portsOn(n.id, id)])].sort((a, b) => a - b) }));
      let previous = prev ? withRetained(prev.plan, retained.get(id), memberSet) : undefined;
      if (previous && input.rebalance) previous = releaseAccess(previous, rebalanceRelease(previous, livePublic));
      let plan: CompactPlan;
      try {
        plan = planCompact(overMembers(bp, memberSet), { nodes: inventory }, { random: input.random, previous });
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
        status.problems.push(...e.problems);
        continue;
      }
      yield; // planning 10,000 nodes is ~2.6 s of key sealing: one block, the longest of a round
      const entries = planEntries(plan, envelope);
      const ops = diffEntries(k.plan(bp.tenant, bp.name), input.planMirror.get(id), entries, 'meta');
      if (!ops.length && prev) {
        plan.generation = prev.plan.generation;
      } else {
        planOps.push(ops);
        replanned.push(id);
      }
      current.set(id, { plan, envelope });
      setPorts(id, plan);
      status.version = plan.version;
      status.generation = plan.generation;
      break;
    }
  }

  // 3. Direct-peer directories (one per network with hidden members, written once instead of into every hidden
  // node's part), then the parts: for reachable nodes, what their part should be; removed blueprints and unlisted
  // nodes: nothing.
  // A network id is a hash of tenant, blueprint and name (50 bits): two blueprints' networks with one id (a tenant
  // that searched for a collision) would share a directory and a candidate table — another tenant's peers in a
  // signed part. Such networks get neither (their hidden nodes keep the full peer lists, and the relay).
  const collided = collidedNetworks([...current].map(([id, c]) => [id, c.plan]));
  for (const [net, owners] of collided) {
    warnings.push({ fields: { network: net, blueprints: owners }, message: 'controller: two networks have the same id: no direct-peer directory, candidate table or roster for it' });
    for (const b of owners) {
      const name = current.get(b)?.plan.networks.find((n) => n.id === net)?.name ?? net;
      const others = owners.filter((x) => x !== b);
      const also = others.length ? `also a network of ${others.join(', ')}` : 'also the id of another network of this blueprint';
      statuses[b]?.problems.push({ code: 'E_NETWORK_ID_COLLISION', path: `networks.${name}`, message: `network id ${net} is ${also}: its hidden nodes get no direct paths, its members no roster`, hint: 'rename the network (its id is derived from tenant, blueprint and name)' });
    }
  }
  const wantDirs = new Map<string, Map<string, string>>();
  for (const [id, c] of current) {
    try {
      for (const [net, m] of directoryEntries(c.plan)) if (!collided.has(net)) wantDirs.set(net, m);
    } catch (e) {
      // Its peers cannot be derived (see below: its nodes keep their parts): its directories stay as stored.
      warnings.push({ fields: { blueprint: id, err: (e as Error).message }, message: 'controller: directories of a plan whose peers cannot be derived are kept' });
      for (const n of c.plan.networks) {
        const kept = currentDirectory(input.directoryMirror.get(n.id));
        if (kept && !collided.has(n.id)) wantDirs.set(n.id, kept.entries);
      }
    }
  }
  const directories = nextDirectories(wantDirs, input.directoryMirror);
  const dirOps = directoryOps(k, input.directoryMirror, directories);
  const heads = new Map([...directories].map(([net, d]) => [net, directoryHead(d)]));
  // Rosters (every network's members' subnets, names and policy addresses, written once instead of into every
  // member's part): the same epochs and rules. A collided network has none (its parts keep the buckets).
  const wantRosters = new Map<string, Map<string, string>>();
  for (const [, c] of current) for (const [net, m] of rosterEntries(c.plan)) if (!collided.has(net)) wantRosters.set(net, m);
  const rosters = nextDirectories(wantRosters, input.rosterMirror, 'roster');
  const rosterOps = directoryOps(k, input.rosterMirror, rosters, 'roster');
  const rosterHeads = new Map([...rosters].map(([net, d]) => [net, directoryHead(d)]));
  // A new epoch's hint (src/control/roster.ts) after its entries; an old epoch's hint goes with its entries.
  const hintPuts = [...rosterHints(input.rosterMirror, rosters)].map(([net, v]): Op => ({ type: 'put', key: k.rosterEntry(net, rosters.get(net)!.epoch, ROSTER_HINT), value: v }));
  const hintDeletes: Op[] = [];
  for (const [net, olds] of input.rosterMirror) for (const o of olds) if (rosters.get(net)?.epoch !== o.epoch) hintDeletes.push({ type: 'delete', key: k.rosterEntry(net, o.epoch, ROSTER_HINT) });
  const directoryPuts = [...dirOps.puts, ...rosterOps.puts, ...hintPuts];
  // Hints first: a controller stopped halfway leaves entries (which the next one reads and deletes), not a hint alone.
  const directoryDeletes = [...dirOps.deletes, ...hintDeletes, ...rosterOps.deletes];
  const desired = new Map<string, Entries | undefined>();
  const signedParts = new Set<string>();
  for (const [id, c] of current) {
    // Heads point to this version's own envelope key: a node granted it can never read (or watch) a later one.
    yield;
    let all: Map<string, Entries>;
    try {
      all = planPartEntries(c.plan, k.envelopeAt(c.plan.tenant, c.plan.blueprint, c.plan.version), dec.reachable, heads, rosterHeads);
    } catch (e) {
      // A stored plan that did not re-plan and cannot derive its peers (stored before the compact form, or
      // damaged): the nodes keep the parts they have.
      warnings.push({ fields: { blueprint: id, err: (e as Error).message }, message: 'controller: no parts from a plan whose peers cannot be derived' });
      for (const pid of input.partMirror.keys()) if (pid.slice(pid.indexOf('/') + 1) === id) desired.set(pid, input.partMirror.get(pid));
      continue;
    }
    yield;
    for (const [node, e] of all) {
      yield;
      const pid = `${node}/${id}`;
      if (input.signingKey) signedParts.add(pid);
      const signed = input.signingKey ? signPartEntries(k.part({ node, tenant: c.plan.tenant, blueprint: c.plan.blueprint }), e, input.signingKey, input.ownHeads?.has(pid) ? input.partMirror.get(pid) : undefined) : e;
      desired.set(pid, signed);
    }
  }
  for (const pid of input.partMirror.keys()) {
    if (desired.has(pid)) continue;
    const [node, tenant, name] = pid.split('/');
    const id = blueprintId(tenant, name);
    const c = current.get(id);
    // A node that is not reachable keeps what it has (it may come back); a node the blueprint no longer
    // lists, a removed blueprint, or a node no longer enrolled (revoked: it tears its networks down, and
    // its envelope grants go) loses its part.
    const revoked = !input.enrolled.has(node);
    if (!c || revoked || !listedNodes(c.envelope.blueprint).has(node) || (dec.reachable.has(node) && !c.plan.networks.some((n) => n.resources.some((r) => r.node === node)))) {
      desired.set(pid, undefined);
    }
  }
  const byNode = new Map<string, { removals: Op[]; updates: Op[] }>();
  for (const [pid, next] of desired) {
    yield;
    const [node, tenant, name] = pid.split('/');
    const ops = diffEntries(k.part({ node, tenant, blueprint: name }), input.partMirror.get(pid), next, 'gen');
    if (!ops.length) continue;
    let g = byNode.get(node);
    if (!g) byNode.set(node, (g = { removals: [], updates: [] }));
    (next ? g.updates : g.removals).push(...ops);
  }
  const partGroups = [...byNode.keys()].sort().map((node) => [...byNode.get(node)!.removals, ...byNode.get(node)!.updates]);

  // 4. Envelopes and grants. With etcd RBAC, a node may read an envelope from before its head points to it until
  // after its part is gone. What each node's part will point to once written: the envelope key of its head.
  const wantGrants = new Map<string, Set<string>>();
  const referenced = new Set<string>();
  // Hidden nodes read their networks' candidate tables (direct paths): blueprint → node → table keys.
  const hiddenMembers = new Map<string, Set<string>>();
  const tablesOf = new Map<string, Map<string, string[]>>();
  for (const [id, c] of current) {
    const byNode = new Map<string, string[]>();
    for (const n of c.plan.networks) {
      // Every member: its network's roster, this epoch's only.
      const roster = rosters.get(n.id);
      if (roster) for (const r of n.resources) byNode.set(r.node, [...(byNode.get(r.node) ?? []), k.rosterPrefix(n.id, roster.epoch)]);
      // Per epoch (the directory's): the table's pointer, that epoch's table and directory — never the network's
      // whole prefix, where a watch opened while a member would show every later epoch after it left.
      const d = directories.get(n.id);
      if (!d) continue;
      for (const r of n.resources) {
        if (!r.hidden) continue;
        let m = hiddenMembers.get(n.id);
        if (!m) hiddenMembers.set(n.id, (m = new Set()));
        m.add(r.node);
        byNode.set(r.node, [...(byNode.get(r.node) ?? []), k.candidatePointer(n.id), k.candidateTable(n.id, d.epoch), k.directoryPrefix(n.id, d.epoch)]);
      }
    }
    tablesOf.set(id, byNode);
  }
  for (const pid of new Set([...input.partMirror.keys(), ...desired.keys()])) {
    const entries = desired.has(pid) ? desired.get(pid) : input.partMirror.get(pid);
    const head = parseHead(entries?.get('gen'));
    if (!head) continue;
    const node = pid.split('/')[0];
    let set = wantGrants.get(node);
    if (!set) wantGrants.set(node, (set = new Set()));
    set.add(head.envelope);
    referenced.add(head.envelope);
    for (const key of tablesOf.get(pid.slice(node.length + 1))?.get(node) ?? []) set.add(key);
  }
  const envelopeOps: Op[] = [];
  for (const [, c] of current) {
    const key = k.envelopeAt(c.plan.tenant, c.plan.blueprint, c.plan.version);
    referenced.add(key);
    if (!input.envelopes.has(key)) envelopeOps.push({ type: 'put', key, value: JSON.stringify(c.envelope) });
  }
  const staleEnvelopes = [...input.envelopes].filter((key) => !referenced.has(key)).map((key): Op => ({ type: 'delete', key }));

  return { dec, statuses, replanned, removed, current, memberOps, planOps, envelopeOps, partGroups, desired, wantGrants, hiddenMembers, staleEnvelopes, directoryPuts, directoryDeletes, directories, rosters, signedParts, warnings };
}
