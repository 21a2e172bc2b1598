// Test fixtures: normalized blueprints, inventories with real identity keys, seeded randomness.
import type { Blueprint, NetworkSpec } from '../../src/blueprint/types.ts';
import { Key, x25519KeyPair, type KeyPair } from '../../src/crypto/keys.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import type { Inventory, InventoryNode } from '../../src/plan/inventory.ts';

export function net(over: Partial<NetworkSpec> & { nodes: string[] }): NetworkSpec {
  return { name: 'net', ipRange: '10.1.0.0/16', subnetPrefix: 24, access: [], egress: false, ...over };
}

export function blueprint(networks: NetworkSpec[], over: Partial<Blueprint> = {}): Blueprint {
  return { tenant: 'acme', name: 'shop', version: 1, networks, workloads: [], volumes: [], ...over };
}

const identityCache = new Map<string, KeyPair>();
/** A deterministic identity per node id (cached: key derivation is the slow part of big fixtures). */
export function identity(id: string): KeyPair {
  let kp = identityCache.get(id);
  if (!kp) identityCache.set(id, (kp = x25519KeyPair(seededRandom(`identity:${id}`)(32))));
  return kp;
}

export interface NodeDef {
  id: string;
  endpoints?: string[];
  reservedPorts?: number[];
}

export function inventory(defs: (NodeDef | string)[]): Inventory {
  return {
    nodes: defs.map((d): InventoryNode => {
      const def = typeof d === 'string' ? { id: d, endpoints: [`203.0.113.${defs.indexOf(d) + 1}`] } : d;
      return {
        id: def.id,
        publicKey: identity(def.id).publicKey.toString(),
        endpoints: def.endpoints ?? [],
        reservedPorts: def.reservedPorts ?? [],
      };
    }),
  };
}

export function secretOf(id: string): Key {
  return identity(id).privateKey;
}
