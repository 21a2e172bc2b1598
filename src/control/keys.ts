// The etcd key layout (docs/control-plane.md). Every name in a key (tenant, blueprint, network, node, device)
// is a DNS label, so "/" separates fields unambiguously. Pure: builds and parses key strings only.

export const DEFAULT_PREFIX = '/zmesh/v1';

/** Size of a subnet bucket: a node part lists a network's subnets in buckets of this many slots. */
export const SUBNET_BUCKET = 64;

export interface PartRef {
  node: string;
  tenant: string;
  blueprint: string;
}

/**
 * What is kept per network and membership epoch (src/control/directory.ts): the direct-peer directory and the
 * roster. The kind is also the key's folder.
 */
export type EpochKind = 'directory' | 'roster';

export class Keys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    if (!/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/.test(prefix)) throw new Error(`bad etcd key prefix ${prefix}`);
  }

  // Written by operators (`zmesh controller tenant|apply|remove`).
  tenants(): string {
    return `${this.prefix}/tenants/`;
  }
  tenant(name: string): string {
    return `${this.tenants()}${name}`;
  }
  blueprints(): string {
    return `${this.prefix}/blueprints/`;
  }
  blueprint(tenant: string, name: string): string {
    return `${this.blueprints()}${tenant}/${name}`;
  }

  // Written by operators (`zmesh controller node approve|revoke`): each node's pinned identity key.
  enrollments(): string {
    return `${this.prefix}/enroll/`;
  }
  enrollment(id: string): string {
    return `${this.enrollments()}${id}`;
  }

  // Written by agents, under their lease, signed by their identity key (src/control/records.ts).
  nodes(): string {
    return `${this.prefix}/nodes/`;
  }
  node(id: string): string {
    return `${this.nodes()}${id}`;
  }
  // Written by the controller: what each hidden node is told about the others' endpoints (direct paths).
  allCandidates(): string {
    return `${this.prefix}/candidates/`;
  }
  candidates(node: string): string {
    return `${this.allCandidates()}${node}`;
  }
  // Written by the controller: per network, every hidden member's candidates (direct paths); each hidden node's
  // role may read the tables of the networks the plans make it hidden in.
  candidateTables(): string {
    return `${this.prefix}/candidate-tables/`;
  }
  /** One network's keys: its pointer and its tables. A node's read grant covers this prefix. */
  candidateTablePrefix(networkId: string): string {
    return `${this.candidateTables()}${networkId}/`;
  }
  /** `{epoch, members}`: which table is current. */
  candidatePointer(networkId: string): string {
    return `${this.candidateTablePrefix(networkId)}current`;
  }
  /**
   * The table of one membership epoch. A new epoch (a new key) whenever a member leaves: etcd checks a watch's
   * permission only when it is created, so a node that was a member keeps a watch it opened then — on the old key,
   * which is deleted, never on the new one.
   */
  candidateTable(networkId: string, epoch: string): string {
    return `${this.candidateTablePrefix(networkId)}t/${epoch}`;
  }
  // Written by the controller, per network and membership epoch, one entry per member (src/control/directory.ts):
  //   directory/<network>/<epoch>/<node>  each hidden member's direct-peer entry; read by the hidden members
  //   roster/<network>/<epoch>/<node>     each member's subnet, name and policy addresses (src/control/roster.ts);
  //                                       read by every member
  // A node's role may read the current epoch of the networks it is in (hidden in, for directories).
  epochRoot(kind: EpochKind): string {
    return `${this.prefix}/${kind}/`;
  }
  /** One epoch of one network's directory or roster: what a member's read grant covers (a range). */
  epochPrefix(kind: EpochKind, networkId: string, epoch: string): string {
    return `${this.epochRoot(kind)}${networkId}/${epoch}/`;
  }
  epochEntry(kind: EpochKind, networkId: string, epoch: string, node: string): string {
    return `${this.epochPrefix(kind, networkId, epoch)}${node}`;
  }
  /** ".../<kind>/<network>/<epoch>/<node>" → its parts; null for other keys. */
  parseEpochKey(kind: EpochKind, key: string): { network: string; epoch: string; node: string } | null {
    const rest = this.tail(key, this.epochRoot(kind));
    if (!rest || rest.length !== 3 || rest.some((s) => s === '')) return null;
    return { network: rest[0], epoch: rest[1], node: rest[2] };
  }
  directories(): string {
    return this.epochRoot('directory');
  }
  directoryPrefix(networkId: string, epoch: string): string {
    return this.epochPrefix('directory', networkId, epoch);
  }
  directoryEntry(networkId: string, epoch: string, node: string): string {
    return this.epochEntry('directory', networkId, epoch, node);
  }
  parseDirectoryKey(key: string): { network: string; epoch: string; node: string } | null {
    return this.parseEpochKey('directory', key);
  }
  rosters(): string {
    return this.epochRoot('roster');
  }
  rosterPrefix(networkId: string, epoch: string): string {
    return this.epochPrefix('roster', networkId, epoch);
  }
  rosterEntry(networkId: string, epoch: string, node: string): string {
    return this.epochEntry('roster', networkId, epoch, node);
  }
  parseRosterKey(key: string): { network: string; epoch: string; node: string } | null {
    return this.parseEpochKey('roster', key);
  }
  statuses(): string {
    return `${this.prefix}/status/`;
  }
  status(node: string): string {
    return `${this.statuses()}${node}`;
  }

  // Written by the controller.
  members(): string {
    return `${this.prefix}/members/`;
  }
  member(id: string): string {
    return `${this.members()}${id}`;
  }
  plans(): string {
    return `${this.prefix}/plans/`;
  }
  plan(tenant: string, name: string): string {
    return `${this.plans()}${tenant}/${name}/`;
  }
  envelope(tenant: string, name: string): string {
    return `${this.plan(tenant, name)}envelope`;
  }
  parts(): string {
    return `${this.prefix}/parts/`;
  }
  /** Immutable copies of planned envelopes, one key per version: what part heads point to and nodes may read. */
  envelopes(): string {
    return `${this.prefix}/envelopes/`;
  }
  envelopeAt(tenant: string, name: string, version: number): string {
    return `${this.envelopes()}${tenant}/${name}/${version}`;
  }
  /** What one agent watches. */
  nodeParts(node: string): string {
    return `${this.parts()}${node}/`;
  }
  part(ref: PartRef): string {
    return `${this.nodeParts(ref.node)}${ref.tenant}/${ref.blueprint}/`;
  }
  control(): string {
    return `${this.prefix}/control/`;
  }
  leader(): string {
    return `${this.control()}leader`;
  }
  controllerStatus(): string {
    return `${this.control()}status`;
  }
  rebalance(): string {
    return `${this.control()}rebalance`;
  }
  cluster(): string {
    return `${this.control()}cluster`;
  }

  /** ".../parts/<node>/<tenant>/<blueprint>/<suffix>" → the part and the suffix; null for other keys. */
  parsePartKey(key: string): { ref: PartRef; suffix: string } | null {
    if (!key.startsWith(this.parts())) return null;
    const rest = key.slice(this.parts().length).split('/');
    if (rest.length < 4 || rest.slice(0, 3).some((s) => s === '')) return null;
    return { ref: { node: rest[0], tenant: rest[1], blueprint: rest[2] }, suffix: rest.slice(3).join('/') };
  }

  /** ".../plans/<tenant>/<blueprint>/<suffix>" → tenant, blueprint, suffix. */
  parsePlanKey(key: string): { tenant: string; blueprint: string; suffix: string } | null {
    if (!key.startsWith(this.plans())) return null;
    const rest = key.slice(this.plans().length).split('/');
    if (rest.length < 3 || rest[0] === '' || rest[1] === '') return null;
    return { tenant: rest[0], blueprint: rest[1], suffix: rest.slice(2).join('/') };
  }

  /** The last path segments after a prefix ("…/blueprints/acme/shop" → ["acme", "shop"]). */
  tail(key: string, prefix: string): string[] | null {
    return key.startsWith(prefix) ? key.slice(prefix.length).split('/') : null;
  }
}

export function partId(ref: PartRef): string {
  return `${ref.node}/${ref.tenant}/${ref.blueprint}`;
}

export function blueprintId(tenant: string, name: string): string {
  return `${tenant}/${name}`;
}
