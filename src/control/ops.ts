// Operator operations on the etcd control plane (used by `zmesh controller …`): tenants, blueprints,
// rebalance requests, and a read of everything for status views. Every blueprint is verified here too (the
// controller verifies it again before planning).
import type { Etcd3 } from 'etcd3';
import { verifySigned } from '../blueprint/index.ts';
import type { SignedBlueprint } from '../blueprint/types.ts';
import { Key } from '../crypto/keys.ts';
import { ValidationError, ZmeshError } from '../errors.ts';
import { checkSubmitted, type RoundReport } from './controller.ts';
import { readPrefix } from './etcd.ts';
import { blueprintId, Keys } from './keys.ts';
import type { MemberRecord, Registration } from './membership.ts';
import { openRecord } from './records.ts';
import { parseEnrollment, readEnrollment, signEnrollment, signerOf, type Enrollment } from './signed.ts';

export const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export class ControlOps {
  readonly keys: Keys;
  constructor(
    readonly client: Etcd3,
    prefix?: string,
  ) {
    this.keys = new Keys(prefix);
  }

  async addTenant(name: string, publicKey: string): Promise<void> {
    const problems = [];
    if (!LABEL.test(name)) problems.push({ code: 'E_NAME_FORMAT', path: 'name', message: 'a tenant name is a DNS label', hint: 'rename the tenant' });
    if (!Key.isValid(publicKey)) problems.push({ code: 'E_KEY_FORMAT', path: 'key', message: 'the tenant key is a base64 ed25519 public key', hint: 'use the key `zmesh keygen tenant` printed' });
    if (problems.length) throw new ValidationError(problems, 'tenant');
    await this.client.put(this.keys.tenant(name)).value(JSON.stringify({ publicKey }));
  }

  async tenants(): Promise<Record<string, string>> {
    const { kvs } = await readPrefix(this.client, this.keys.tenants());
    const out: Record<string, string> = {};
    for (const [k, v] of kvs) out[k.slice(this.keys.tenants().length)] = (JSON.parse(v) as { publicKey: string }).publicKey;
    return out;
  }

  async removeTenant(name: string): Promise<void> {
    const { kvs } = await readPrefix(this.client, `${this.keys.blueprints()}${name}/`);
    if (kvs.size) {
      throw new ZmeshError('E_TENANT_IN_USE', `tenant ${name} still has ${kvs.size} blueprint(s)`, { hint: `remove them first: zmesh controller remove ${name} BLUEPRINT` });
    }
    const r = await this.client.delete().key(this.keys.tenant(name));
    if (r.deleted === '0') throw new ZmeshError('E_NOT_FOUND', `no tenant ${name}`, { hint: 'list them with `zmesh controller tenant ls`' });
  }

  /** Verifies a signed envelope (tenant key from etcd, version, device keys) and stores it for the controller. */
  async submit(envelope: unknown): Promise<{ tenant: string; name: string; version: number }> {
    const bp = verifySigned(envelope);
    const tenantText = await this.client.get(this.keys.tenant(bp.tenant)).string();
    const tenantKey = tenantText ? (JSON.parse(tenantText) as { publicKey: string }).publicKey : undefined;
    const plannedText = await this.client.get(this.keys.envelope(bp.tenant, bp.name)).string();
    const planned = plannedText ? (JSON.parse(plannedText) as SignedBlueprint) : undefined;
    checkSubmitted(envelope, tenantKey, planned);
    const key = this.keys.blueprint(bp.tenant, bp.name);
    const currentText = await this.client.get(key).string();
    if (currentText) {
      const cur = JSON.parse(currentText) as SignedBlueprint;
      if (cur.blueprint?.version > bp.version || (cur.blueprint?.version === bp.version && cur.signature?.signature !== (envelope as SignedBlueprint).signature.signature)) {
        throw new ZmeshError('E_REPLAY', `version ${bp.version} is not newer than version ${cur.blueprint.version} already submitted`, { path: 'version', hint: 'raise the version and sign again' });
      }
    }
    await this.client.put(key).value(JSON.stringify(envelope));
    return { tenant: bp.tenant, name: bp.name, version: bp.version };
  }

  async remove(tenant: string, name: string): Promise<void> {
    const r = await this.client.delete().key(this.keys.blueprint(tenant, name));
    if (r.deleted === '0') throw new ZmeshError('E_NOT_FOUND', `no blueprint ${blueprintId(tenant, name)}`, { hint: 'list them with `zmesh controller status`' });
  }

  /**
   * Pins a node's identity key: from now on only registrations signed by this key are planned for the node.
   * A node that already has another pinned key needs `replace` (a re-installed node), which re-keys its resources.
   */
  async approveNode(id: string, publicKey: string, opts: { replace?: boolean; operatorKey?: Key } = {}): Promise<{ changed: boolean }> {
    const problems = [];
    if (!LABEL.test(id)) problems.push({ code: 'E_NAME_FORMAT', path: 'id', message: 'a node id is a DNS label', hint: 'use the id in the agent config (nodeId)' });
    if (!Key.isValid(publicKey)) problems.push({ code: 'E_KEY_FORMAT', path: 'key', message: 'the node key is a base64 X25519 public key', hint: 'use the key `zmesh keygen node` printed, or `zmesh status` on the node' });
    if (problems.length) throw new ValidationError(problems, 'node');
    const key = this.keys.enrollment(id);
    const current = await this.client.get(key).string();
    const read = current ? readEnrollment(key, id, current, null) : null;
    const cur = read && 'enrollment' in read ? read.enrollment : null;
    // The same key again is a no-op, unless it is to be signed (again) by this operator key.
    const sameSigner = !opts.operatorKey || (read && 'signer' in read && read.signer === signerOf(opts.operatorKey));
    if (cur?.publicKey === publicKey && sameSigner) return { changed: false };
    if (cur && cur.publicKey !== publicKey && !opts.replace) {
      throw new ZmeshError('E_NODE_ENROLLED', `node ${id} is enrolled with another key (${cur.publicKey})`, {
        hint: `if the node was re-installed with a new identity, pass --replace (its resources get new keys); otherwise someone else is using the name ${id}`,
      });
    }
    const enrollment: Enrollment = { id, publicKey, approvedAt: new Date().toISOString() };
    const value = opts.operatorKey ? signEnrollment(key, enrollment, opts.operatorKey) : JSON.stringify(enrollment);
    // Compare-and-set: two operators approving at once cannot overwrite each other silently.
    const res = await this.client.kv.txn({
      compare: current ? [{ key: Buffer.from(key), target: 'Value', result: 'Equal', value: Buffer.from(current) }] : [{ key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: 0 }],
      success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value) } }],
    });
    if (!res.succeeded) throw new ZmeshError('E_CONFLICT', `node ${id}'s enrollment changed meanwhile`, { hint: 'look again (zmesh controller node ls) and retry' });
    return { changed: true };
  }

  /** Removes a node's enrollment: the controller drops it from every plan at once. */
  async revokeNode(id: string): Promise<void> {
    const r = await this.client.delete().key(this.keys.enrollment(id));
    if (r.deleted === '0') throw new ZmeshError('E_NOT_FOUND', `node ${id} is not enrolled`, { hint: 'list nodes with `zmesh controller node ls`' });
  }

  async requestRebalance(): Promise<void> {
    await this.client.put(this.keys.rebalance()).value(JSON.stringify({ at: new Date().toISOString() }));
  }

  /** Waits until the controller has handled the rebalance request (it deletes the key). */
  async rebalanceDone(timeoutMs = 30000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if ((await this.client.get(this.keys.rebalance()).string()) === null) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  }

  async overview(): Promise<Overview> {
    const k = this.keys;
    const json = <T>(text: string): T | null => {
      try {
        return JSON.parse(text) as T;
      } catch {
        return null;
      }
    };
    const [leader, status, regs, enrolled, members, statuses, plans, blueprints] = await Promise.all([
      this.client.get(k.leader()).string(),
      this.client.get(k.controllerStatus()).string(),
      readPrefix(this.client, k.nodes()),
      readPrefix(this.client, k.enrollments()),
      readPrefix(this.client, k.members()),
      readPrefix(this.client, k.statuses()),
      readPrefix(this.client, k.plans()),
      readPrefix(this.client, k.blueprints()),
    ]);
    const planMeta: Overview['plans'] = {};
    for (const [key, v] of plans.kvs) {
      const p = k.parsePlanKey(key);
      if (p?.suffix === 'meta') {
        const m = json<{ generation: number; version: number }>(v);
        if (m) planMeta[blueprintId(p.tenant, p.blueprint)] = { version: m.version, generation: m.generation };
      }
    }
    const submitted: Overview['submitted'] = {};
    for (const [key, v] of blueprints.kvs) submitted[key.slice(k.blueprints().length)] = json<SignedBlueprint>(v)?.blueprint?.version ?? null;
    const pick = <T>(m: Map<string, string>, prefix: string) => Object.fromEntries([...m].map(([key, v]) => [key.slice(prefix.length), json<T>(v)]));
    const enrollments: Record<string, Enrollment> = {};
    for (const [key, v] of enrolled.kvs) {
      const id = key.slice(k.enrollments().length);
      const e = parseEnrollment(key, id, v);
      if (e) enrollments[id] = e;
    }
    // A node's records count only when signed by its pinned key (what the controller plans by).
    const trusted = <T>(m: Map<string, string>, prefix: string) =>
      Object.fromEntries(
        [...m].map(([key, v]) => {
          const id = key.slice(prefix.length);
          try {
            const r = openRecord(key, v);
            return [id, r.signer === enrollments[id]?.publicKey ? (r.record as T) : null];
          } catch {
            return [id, null];
          }
        }),
      );
    return {
      leader,
      controller: status ? json<RoundReport & { leader: string }>(status) : null,
      enrollments,
      registrations: trusted<Registration>(regs.kvs, k.nodes()),
      members: pick<MemberRecord>(members.kvs, k.members()),
      statuses: trusted<Record<string, unknown>>(statuses.kvs, k.statuses()),
      plans: planMeta,
      submitted,
    };
  }
}

export interface Overview {
  leader: string | null;
  controller: (RoundReport & { leader: string }) | null;
  enrollments: Record<string, Enrollment>;
  /** Registrations signed by the node's pinned key; null for one that is not (see controller.untrusted). */
  registrations: Record<string, Registration | null>;
  members: Record<string, MemberRecord | null>;
  statuses: Record<string, Record<string, unknown> | null>;
  plans: Record<string, { version: number; generation: number }>;
  submitted: Record<string, number | null>;
}
