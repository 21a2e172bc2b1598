// etcd's own RBAC for the control plane: who may read and write which keys. With client-certificate auth
// (etcd --client-cert-auth) etcd takes a client's user name from its certificate's CN:
//   root               the operator (`zmesh controller auth enable|node approve|revoke`): role root
//   zmesh-controller   the controller: role root (it plans every key, and grants each node read access to the
//                      signed envelopes of the blueprints it takes part in)
//   zmesh-node-<id>    one node: role zmesh-node-<id> = read-write on exactly nodes/<id> and status/<id>, read on
//                      parts/<id>/ and control/cluster, read on envelopes/<t>/<b>/<version> for each part it
//                      has (the key its head points to: granted before the head is written, revoked after it
//                      moved on or the part is gone; one key per version, so a watch opened while a grant held
//                      never sees a later version), and read on the prefix candidate-tables/<network>/ of each
//                      network the plans make it hidden in (granted and revoked with the same rounds; a new table
//                      key per membership epoch, so a watch opened while a member never sees a later table),
//                      and read on roster/<network>/<epoch>/ of each network it is a member of (the same way)
// So a node (or whoever holds its certificate) can write only its own registration and status, and read only
// its own part, the blueprints it runs and what its networks share with their members (rosters, and when hidden,
// directories and candidate tables): never another node's records, parts or keys, nor other tenants' blueprints. Pure permission builders + the few RPCs that apply them.
import type { Etcd3 } from 'etcd3';
import { prefixEnd } from './etcd.ts';
import type { Keys } from './keys.ts';

export const ROOT_USER = 'root';
export const CONTROLLER_USER = 'zmesh-controller';
const NODE_PREFIX = 'zmesh-node-';

export const nodeRole = (id: string): string => `${NODE_PREFIX}${id}`;
export const nodeOfRole = (role: string): string | null => (role.startsWith(NODE_PREFIX) ? role.slice(NODE_PREFIX.length) : null);

export interface Perm {
  permType: 'Read' | 'Write' | 'Readwrite';
  key: string;
  /** Absent: exactly `key`; a prefix's range end otherwise. */
  rangeEnd?: string;
}

/**
 * The read grant for a key the rounds manage: a key ending in "/" as a prefix (a directory or roster epoch; the candidate
 * tables' whole network prefix of earlier versions, to revoke it), any other exactly (envelopes, a table's pointer
 * and one epoch's table).
 */
export function readGrant(keys: Keys, key: string): Perm {
  return directPathKey(keys, key) && key.endsWith('/') ? { permType: 'Read', key, rangeEnd: prefixEnd(key).toString() } : { permType: 'Read', key };
}

/** A candidate-table, directory or roster key: the network grants the rounds manage besides envelopes. */
function directPathKey(keys: Keys, key: string): boolean {
  return key.startsWith(keys.candidateTables()) || key.startsWith(keys.directories()) || key.startsWith(keys.rosters());
}

/** What a node's role holds apart from its envelope grants. */
export function nodePermissions(keys: Keys, id: string): Perm[] {
  const prefix = (p: string): Perm => ({ permType: 'Read', key: p, rangeEnd: prefixEnd(p).toString() });
  return [
    { permType: 'Readwrite', key: keys.node(id) },
    { permType: 'Readwrite', key: keys.status(id) },
    prefix(keys.nodeParts(id)),
    { permType: 'Read', key: keys.cluster() },
  ];
}

export function permId(p: Perm): string {
  return `${p.permType} ${p.key}${p.rangeEnd !== undefined ? ` .. ${p.rangeEnd}` : ''}`;
}

/** An etcd error says authentication is not enabled (or the client may not manage it). */
function authMessage(e: unknown): string {
  return (e as Error).message ?? String(e);
}

export class Rbac {
  constructor(
    readonly client: Etcd3,
    readonly keys: Keys,
  ) {}

  private async addRole(name: string): Promise<void> {
    await this.client.auth.roleAdd({ name }).catch((e) => {
      if (!/already exists/i.test(authMessage(e))) throw e;
    });
  }

  private async addUser(name: string, role: string): Promise<void> {
    await this.client.auth.userAdd({ name, options: { no_password: true } }).catch((e) => {
      if (!/already exists/i.test(authMessage(e))) throw e;
    });
    await this.client.auth.userGrantRole({ user: name, role });
  }

  async grant(role: string, p: Perm): Promise<void> {
    await this.client.auth.roleGrantPermission({
      name: role,
      perm: { permType: p.permType, key: Buffer.from(p.key), range_end: p.rangeEnd !== undefined ? Buffer.from(p.rangeEnd) : Buffer.alloc(0) },
    });
  }

  async revoke(role: string, p: Perm): Promise<void> {
    await this.client.auth
      .roleRevokePermission({ role, key: Buffer.from(p.key), range_end: p.rangeEnd !== undefined ? Buffer.from(p.rangeEnd) : Buffer.alloc(0) })
      .catch((e) => {
        if (!/not granted|not found/i.test(authMessage(e))) throw e;
      });
  }

  /** The root and controller users (certificate CNs `root`, `zmesh-controller`), then auth on. Idempotent. */
  async enable(): Promise<void> {
    await this.addRole('root');
    await this.addUser(ROOT_USER, 'root');
    await this.addUser(CONTROLLER_USER, 'root');
    await this.client.auth.authEnable();
  }

  /** A node's user and role with exactly its own keys (certificate CN `zmesh-node-<id>`). Idempotent. */
  async ensureNode(id: string): Promise<void> {
    const role = nodeRole(id);
    await this.addRole(role);
    for (const p of nodePermissions(this.keys, id)) await this.grant(role, p);
    await this.addUser(role, role);
  }

  async removeNode(id: string): Promise<void> {
    const role = nodeRole(id);
    await this.client.auth.userDelete({ name: role }).catch((e) => {
      if (!/not found/i.test(authMessage(e))) throw e;
    });
    await this.client.auth.roleDelete({ role }).catch((e) => {
      if (!/not found/i.test(authMessage(e))) throw e;
    });
  }

  /** node id → the envelope and candidate-table keys its role may read now (the grants the rounds manage). Empty
   *  when no node role exists (RBAC not set up). */
  async readGrants(): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    const { roles } = await this.client.auth.roleList();
    for (const role of roles) {
      const id = nodeOfRole(role);
      if (id === null) continue;
      const { perm } = await this.client.auth.roleGet({ role });
      const set = new Set<string>();
      for (const p of perm) {
        const key = p.key.toString();
        const envelope = key.startsWith(this.keys.envelopes()) || (key.startsWith(this.keys.plans()) && key.endsWith('/envelope'));
        if (envelope && !p.range_end?.length) set.add(key);
        else if (directPathKey(this.keys, key) && (!p.range_end?.length || p.range_end.toString() === prefixEnd(key).toString())) set.add(key);
      }
      out.set(id, set);
    }
    return out;
  }
}
