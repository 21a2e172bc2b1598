// The lab's embedded control plane: tenant keys, signed blueprints, plans over the lab inventory (stable
// re-planning from the previous plan), and each node's part pushed through its admin socket.
// A blueprint is re-planned and re-signed (with a higher version) only when it or its inventory changed.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalize, signBlueprint, tenantPublicKey, type Blueprint, type SignedBlueprint } from '../src/blueprint/index.ts';
import { call } from '../src/admin/client.ts';
import { Key } from '../src/crypto/keys.ts';
import { ZmeshError } from '../src/errors.ts';
import { nodePart, planBlueprint, type Inventory, type Plan } from '../src/plan/index.ts';
import { hostEndpoints, type Layout } from './layout.ts';
import type { LabSpec, TenantSpec } from './spec.ts';
import { nodePaths, type BlueprintRecord, type LabState } from './state.ts';
import { writePrivateFile } from './sys.ts';

export interface BlueprintPlan {
  key: string;
  tenant: string;
  blueprint: Blueprint;
  signed: SignedBlueprint;
  plan: Plan;
  changed: boolean;
}

export function tenantSecret(dir: string, t: TenantSpec): Key {
  const file = t.keyFile ?? join(dir, 'tenants', `${t.name}.key`);
  if (!t.keyFile && !existsSync(file)) writePrivateFile(file, Key.fromBytes(new Uint8Array(randomBytes(32))).toString() + '\n');
  try {
    return Key.parse(readFileSync(file, 'utf8').trim());
  } catch (e) {
    throw new ZmeshError('E_KEY_FILE', `cannot read tenant key ${file}: ${(e as Error).message}`, { hint: 'create one with `zmesh keygen tenant FILE`', cause: e });
  }
}

/** tenant → ed25519 public key, for every node's trustedTenants. */
export function trustedTenants(dir: string, spec: LabSpec, state: LabState): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of spec.tenants) {
    out[t.name] = tenantPublicKey(tenantSecret(dir, t));
    state.tenants[t.name] = { publicKey: out[t.name] };
  }
  return out;
}

const planFile = (dir: string, key: string) => join(dir, 'plans', `${key.replace('/', '--')}.json`);
const signedFile = (dir: string, key: string) => join(dir, 'signed', `${key.replace('/', '--')}.json`);

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** Plans every blueprint of the spec in order; ports used by earlier blueprints are reserved for later ones. */
export function planLab(spec: LabSpec, layout: Layout, dir: string, state: LabState, identities: Map<string, string>): BlueprintPlan[] {
  const used = new Map<string, Set<number>>(layout.nodes.map((n) => [n.name, new Set<number>()]));
  const out: BlueprintPlan[] = [];
  for (const t of spec.tenants) {
    const secret = tenantSecret(dir, t);
    for (const { blueprint } of t.blueprints) {
      const key = `${t.name}/${blueprint.name}`;
      const members = new Set(blueprint.networks.flatMap((n) => n.nodes));
      const inventory: Inventory = {
        nodes: layout.nodes
          .filter((n) => members.has(n.name))
          .map((n) => ({
            id: n.name,
            publicKey: identities.get(n.name)!,
            endpoints: hostEndpoints(n, layout.underlay),
            reservedPorts: [...used.get(n.name)!].sort((a, b) => a - b),
          })),
      };
      const inputHash = createHash('sha256')
        .update(canonicalize({ blueprint: { ...blueprint, version: 0 }, inventory }))
        .digest('hex');
      const rec = state.blueprints[key];
      const prevPlan = readJson<Plan>(planFile(dir, key));
      const prevSigned = readJson<SignedBlueprint>(signedFile(dir, key));
      let plan: Plan;
      let signed: SignedBlueprint;
      let changed = false;
      if (rec && rec.inputHash === inputHash && prevPlan && prevSigned && prevSigned.signature.publicKey === tenantPublicKey(secret)) {
        plan = prevPlan;
        signed = prevSigned;
      } else {
        const version = Math.max(blueprint.version, (rec?.version ?? 0) + 1);
        const bp = { ...blueprint, version };
        signed = signBlueprint(bp, secret);
        plan = planBlueprint(signed.blueprint, inventory, { random: (n) => new Uint8Array(randomBytes(n)), previous: prevPlan ?? undefined });
        mkdirSync(join(dir, 'plans'), { recursive: true, mode: 0o700 });
        mkdirSync(join(dir, 'signed'), { recursive: true, mode: 0o700 });
        writePrivateFile(planFile(dir, key), JSON.stringify(plan, null, 2) + '\n');
        writeFileSync(signedFile(dir, key), JSON.stringify(signed, null, 2) + '\n', { mode: 0o644 });
        changed = true;
        const record: BlueprintRecord = {
          tenant: t.name,
          name: blueprint.name,
          version,
          generation: plan.generation,
          inputHash,
          nodes: [...new Set(plan.networks.flatMap((n) => n.resources.map((r) => r.node)))].sort(),
        };
        state.blueprints[key] = record;
      }
      for (const n of plan.networks) for (const r of n.resources) used.get(r.node)?.add(r.listenPort);
      out.push({ key, tenant: t.name, blueprint: signed.blueprint, signed, plan, changed });
    }
  }
  return out;
}

interface NodeNetwork {
  tenant: string;
  blueprint: string;
  id: string;
  generation: number;
  applied: boolean;
}

export interface PushResult {
  node: string;
  pushed: string[];
  removed: string[];
  errors: string[];
}

/** What a node holds now; removes the blueprints it holds and should not (recorded in `res`). */
async function pruneNode(node: string, plans: BlueprintPlan[], dir: string, res: PushResult): Promise<NodeNetwork[]> {
  const socket = nodePaths(dir, node).socket;
  const have = (await call<{ networks: NodeNetwork[] }>(socket, 'GET', '/v1/networks', undefined, 15000)).networks;
  const want = new Set(plans.filter((p) => p.plan.networks.some((n) => n.resources.some((r) => r.node === node))).map((p) => p.key));
  for (const key of new Set(have.map((n) => `${n.tenant}/${n.blueprint}`))) {
    if (want.has(key)) continue;
    const [tenant, name] = key.split('/');
    try {
      await call(socket, 'DELETE', `/v1/blueprints/${encodeURIComponent(tenant)}/${encodeURIComponent(name)}`, undefined, 60000);
      res.removed.push(key);
    } catch (e) {
      res.errors.push(`${key}: remove: ${(e as Error).message}`);
    }
  }
  return have;
}

/** Pushes one blueprint's part to a node unless it holds that generation already (or has no part of it). */
async function pushPart(node: string, p: BlueprintPlan, have: NodeNetwork[], dir: string, res: PushResult): Promise<void> {
  if (!p.plan.networks.some((n) => n.resources.some((r) => r.node === node))) return;
  const mine = have.filter((n) => `${n.tenant}/${n.blueprint}` === p.key);
  const parts = nodePart(p.plan, node);
  if (mine.length === parts.networks.length && mine.every((n) => n.generation === p.plan.generation)) return;
  try {
    await call(nodePaths(dir, node).socket, 'POST', '/v1/blueprints', { signed: p.signed, part: parts }, 90000);
    res.pushed.push(p.key);
  } catch (e) {
    const z = e as ZmeshError;
    res.errors.push(`${p.key}: ${z.code ?? ''} ${z.message}`);
  }
}

/**
 * Pushes to every node, blueprint by blueprint: a blueprint goes to the public nodes (at once), then to the hidden
 * nodes (at once) while the public nodes already take the next one. A hidden node's first handshake goes out as
 * soon as its tunnel exists (persistent keepalive); with its access node already configured it is answered at
 * once instead of after WireGuard's 5 s retry. (Public nodes first for ALL blueprints, then hidden nodes, cost the
 * quickstart ~2 s: a node applies its blueprints one after the other, workloads included.)
 */
export async function pushAll(layout: Layout, plans: BlueprintPlan[], dir: string): Promise<PushResult[]> {
  const res = new Map(layout.nodes.map((n) => [n.name, { node: n.name, pushed: [], removed: [], errors: [] } as PushResult]));
  const have = new Map<string, NodeNetwork[] | null>();
  await Promise.all(
    layout.nodes.map(async (n) => {
      const r = res.get(n.name)!;
      have.set(n.name, await pruneNode(n.name, plans, dir, r).catch((e: Error) => (r.errors.push(e.message), null)));
    }),
  );
  const push = (nodes: Layout['nodes'], p: BlueprintPlan) =>
    Promise.all(nodes.filter((n) => have.get(n.name)).map((n) => pushPart(n.name, p, have.get(n.name)!, dir, res.get(n.name)!)));
  const pub = layout.nodes.filter((n) => n.attach.kind === 'internet');
  const hidden = layout.nodes.filter((n) => n.attach.kind !== 'internet');
  let behind: Promise<unknown> = Promise.resolve();
  for (const p of plans) {
    await push(pub, p);
    behind = behind.then(() => push(hidden, p));
  }
  await behind;
  return [...pub, ...hidden].map((n) => res.get(n.name)!);
}

export interface NodeStatus {
  node: string;
  reachable: boolean;
  networks: { tenant: string; blueprint: string; name: string; id: string; applied: boolean; lastError: string | null; generation: number }[];
  errors: { networkId: string; message: string }[];
}

export async function nodeStatus(dir: string, node: string): Promise<NodeStatus> {
  try {
    const s = await call<{ networks: NodeStatus['networks']; errors: NodeStatus['errors'] }>(nodePaths(dir, node).socket, 'GET', '/v1/status', undefined, 5000);
    return { node, reachable: true, networks: s.networks, errors: s.errors };
  } catch {
    return { node, reachable: false, networks: [], errors: [] };
  }
}

/** Saved plans of a running lab (for matrix, graph, status without re-planning). */
export function savedPlans(dir: string, state: LabState): { key: string; plan: Plan }[] {
  const out: { key: string; plan: Plan }[] = [];
  for (const key of Object.keys(state.blueprints)) {
    const plan = readJson<Plan>(planFile(dir, key));
    if (plan) out.push({ key, plan });
  }
  return out;
}

export function removePlanFiles(dir: string, key: string): void {
  for (const f of [planFile(dir, key), signedFile(dir, key)]) rmSync(f, { force: true });
}
