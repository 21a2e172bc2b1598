// Inputs of the planner benchmark (bench/plan.ts): a blueprint with one full-mesh network over N nodes (every
// tenth hidden: no endpoints) and its inventory, as JSON files; `version` 2 and one more node for the re-plan.
// Usage (for a look at the inputs): node --import tsx bench/plan-case.ts N DIR
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '../src/crypto/rng.ts';
import { x25519KeyPair } from '../src/crypto/keys.ts';

export interface PlanInputs {
  blueprint: string;
  inventory: string;
}

const keyCache: string[] = [];
/** Identity public keys of node i (deterministic; derived once per process). */
function identityKey(i: number): string {
  if (keyCache[i] === undefined) {
    const rnd = seededRandom(`bench-identity-${i}`);
    keyCache[i] = x25519KeyPair(rnd(32)).publicKey.toString();
  }
  return keyCache[i];
}

export function nodeId(i: number): string {
  return `node-${String(i).padStart(5, '0')}`;
}

/** Writes blueprint and inventory files for `count` nodes into `dir`; returns their paths. */
export function writePlanInputs(dir: string, count: number, version = 1): PlanInputs {
  mkdirSync(dir, { recursive: true });
  const nodes = Array.from({ length: count }, (_, i) => ({
    id: nodeId(i),
    publicKey: identityKey(i),
    endpoints: i % 10 === 9 ? [] : [`198.51.${100 + (i >> 8)}.${i & 255}`],
  }));
  const bp = {
    tenant: 'bench',
    name: 'big',
    version,
    // A /12 holds 4,096 /24s: larger cases take a /10.
    networks: [{ name: 'mesh', ipRange: count > 4000 ? '10.0.0.0/10' : '10.0.0.0/12', subnetPrefix: 24, nodes: nodes.map((x) => x.id) }],
  };
  const blueprint = join(dir, `bp-${count}-v${version}.json`);
  const inventory = join(dir, `inv-${count}.json`);
  writeFileSync(blueprint, JSON.stringify(bp));
  writeFileSync(inventory, JSON.stringify({ nodes }));
  return { blueprint, inventory };
}

if (process.argv[1]?.endsWith('plan-case.ts') && process.argv.length >= 4) {
  console.log(writePlanInputs(process.argv[3], Number(process.argv[2])));
}
