// The wg-quick config the etcd lab writes for an access device that brought its own key (labs/etcd.ts
// deviceConfig): the planner's own config (src/plan/planner.ts wgQuickConfig), both families on a dual-stack
// network. It used to be a copy with the IPv4 lines only: the etcd example lab (labs/examples/etcd.yaml) then
// never went green (its laptop's 8 IPv6 rows).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceConfig } from '../../labs/etcd.ts';
import type { Layout } from '../../labs/layout.ts';
import { x25519KeyPair } from '../../src/crypto/keys.ts';
import { seededRandom } from '../../src/crypto/rng.ts';
import { planBlueprint } from '../../src/plan/index.ts';
import { blueprint, inventory, net } from '../helpers/fixtures.ts';

test('etcd lab: a device that brought its key gets the planner config, both families', () => {
  const dev = x25519KeyPair(seededRandom('laptop')(32));
  const plan = planBlueprint(blueprint([net({ nodes: ['a', 'b'], access: [{ name: 'laptop', publicKey: dev.publicKey.toString() }] })]), inventory(['a', 'b']), { random: seededRandom('p') });
  const n = plan.networks[0];
  const d = n.access[0];
  const via = n.resources.find((r) => r.node === d.via)!;
  assert.ok(n.ipv6Range && d.address6 && via.gateway6, 'a dual-stack network');
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-lab-dev-'));
  try {
    mkdirSync(join(dir, 'device-keys'));
    writeFileSync(join(dir, 'device-keys', 'acme--shop--net--laptop.key'), dev.privateKey.toString() + '\n', { mode: 0o600 });
    const layout = { nodes: [{ name: d.via, attach: { kind: 'internet' }, address: '198.51.100.7' }] } as unknown as Layout;
    assert.equal(
      deviceConfig(layout, dir, plan, n, d),
      [
        '[Interface]',
        '# zmesh access device laptop (acme/shop network net; lab-made key)',
        `PrivateKey = ${dev.privateKey.toString()}`,
        `Address = ${d.address}/32, ${d.address6}/128`,
        `DNS = ${via.gateway}, ${via.gateway6}, net`,
        '',
        '[Peer]',
        `PublicKey = ${via.publicKey}`,
        `Endpoint = 198.51.100.7:${via.listenPort}`,
        `AllowedIPs = ${n.ipRange}, ${n.ipv6Range}`,
        'PersistentKeepalive = 25',
        '',
      ].join('\n'),
    );
    // No key file: nothing (the lab writes the key before it signs the blueprint).
    assert.equal(deviceConfig(layout, join(dir, 'none'), plan, n, d), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
