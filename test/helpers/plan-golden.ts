// Golden planner cases (issue #17): inputs whose full-form plan (`zmesh-plan/1`) was recorded in
// test/golden/plan/<name>.json by the planner before the compact format existed. expand(compact) must give the
// same bytes. Regenerate only on purpose: node --import tsx test/helpers/plan-golden.ts --write
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Blueprint } from '../../src/blueprint/types.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { x25519KeyPair } from '../../src/crypto/keys.ts';
import { planBlueprint, type Inventory, type Plan } from '../../src/plan/index.ts';
import { blueprint, inventory, net } from './fixtures.ts';

export interface GoldenCase {
  name: string;
  bp: Blueprint;
  inv: Inventory;
  seed: string;
  /** Name of the golden case whose plan is the previous plan. */
  previous?: string;
}

const deviceKey = x25519KeyPair(seededRandom('golden-device')(32)).publicKey.toString();

const mixedNodes = [
  { id: 'pa', endpoints: ['203.0.113.1'], reservedPorts: [51820] },
  { id: 'pb', endpoints: ['2001:db8::2'] },
  { id: 'pc', endpoints: ['203.0.113.3'] },
  { id: 'h1' },
  { id: 'h2' },
  { id: 'h3' },
];
const mixed = blueprint(
  [
    net({
      name: 'backend',
      ipRange: '10.20.0.0/16',
      nodes: ['pa', 'pb', 'pc', 'h1', 'h2', 'h3'],
      egress: true,
      access: [{ name: 'laptop', egress: true }, { name: 'phone', publicKey: deviceKey }],
      policy: { default: 'deny', rules: [{ from: ['any'], to: ['workload:web'], ports: ['tcp/443'] }] },
    }),
    net({ name: 'front', ipRange: '10.30.0.0/20', subnetPrefix: 26, nodes: ['pa', 'h2'] }),
  ],
  {
    workloads: [
      { name: 'web', node: 'pa', image: 'nginx', command: [], network: { name: 'backend' }, cpu: 1, memory: 1 << 28, volumes: [] },
      { name: 'db', node: 'h1', image: 'pg', command: [], network: { name: 'backend', ip: '10.20.3.9' }, cpu: 1, memory: 1 << 28, volumes: [] },
      { name: 'edge', node: 'h2', image: 'caddy', command: [], network: { name: 'front' }, cpu: 1, memory: 1 << 28, volumes: [] },
    ],
  },
);
const grown = {
  ...mixed,
  version: 2,
  networks: [
    { ...mixed.networks[0], nodes: ['pa', 'pb', 'h1', 'h2', 'h3', 'pd', 'h4'], access: [...mixed.networks[0].access, { name: 'tablet' }] },
    mixed.networks[1],
  ],
};

export const GOLDEN: GoldenCase[] = [
  { name: 'mixed', bp: mixed, inv: inventory(mixedNodes), seed: 'golden-mixed' },
  { name: 'one-public', bp: blueprint([net({ nodes: ['gw', 'x1', 'x2', 'x3'] })]), inv: inventory([{ id: 'gw', endpoints: ['198.51.100.7'] }, { id: 'x1' }, { id: 'x2' }, { id: 'x3' }]), seed: 'golden-one' },
  { name: 'mixed-replanned', bp: grown, inv: inventory([...mixedNodes, { id: 'pd', endpoints: ['203.0.113.4'] }, { id: 'h4' }]), seed: 'golden-grown', previous: 'mixed' },
];

export function goldenPath(name: string): string {
  return fileURLToPath(new URL(`../golden/plan/${name}.json`, import.meta.url));
}

if (process.argv.includes('--write')) {
  const done = new Map<string, Plan>();
  for (const c of GOLDEN) {
    const plan = planBlueprint(c.bp, c.inv, { random: seededRandom(c.seed), previous: c.previous ? done.get(c.previous) : undefined });
    done.set(c.name, plan);
    writeFileSync(goldenPath(c.name), JSON.stringify(plan, null, 2) + '\n');
  }
}
