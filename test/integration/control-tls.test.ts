// etcd over TLS with client certificates (a CA, server and client certs made with openssl): the controller,
// the agents and the CLI connect with their client certificate; no certificate or another CA's is refused.
// And no clear private key anywhere in etcd: every value is scanned for node identity secrets, resource private
// keys, the tenant secret and wg-quick configs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Etcd3 } from 'etcd3';
import { openSealed } from '../../src/crypto/seal.ts';
import { sealContext } from '../../src/plan/types.ts';
import { ValidationError } from '../../src/errors.ts';
import { connectEtcd, etcdClientOptions } from '../../src/control/index.ts';
import { blueprint, identity, net } from '../helpers/fixtures.ts';
import { signed, tenantKeys } from '../helpers/agent-fixtures.ts';
import { controlBed, waitFor } from '../helpers/control-bed.ts';
import { etcdAvailable } from '../helpers/etcd.ts';

const skip = etcdAvailable() ? false : 'etcd is not installed (scripts/deps.sh installs it)';
const ROOT = new URL('../..', import.meta.url).pathname;
const DEVICE_KEY = 'GG2jGAkdzsbvvTFmyZRXuDzsvAd8cXmBAvoRzYakg1Q=';

test('TLS with client certificates; no clear private key anywhere in etcd', { skip, timeout: 90000 }, async () => {
  const bed = await controlBed({ tls: true });
  try {
    const tls = bed.cluster.tls!;
    assert.ok(bed.cluster.urls.startsWith('https://'));
    await bed.controller();
    const agents = [await bed.agent('p1', ['203.0.113.1']), await bed.agent('p2', ['203.0.113.2']), await bed.agent('h1', [])];
    const bp = blueprint([net({ nodes: ['p1', 'p2', 'h1'], access: [{ name: 'laptop', publicKey: DEVICE_KEY }] })]);
    await bed.submit(bp);
    await waitFor('applied over TLS', () => agents.every((a) => a.bed.agent.networks()[0]?.applied));

    // Refused: no client certificate; a certificate from another CA; half a certificate (a usage error).
    const fast = { faultHandling: { global: undefined }, dialTimeout: 2000 };
    const noCert = new Etcd3({ hosts: bed.cluster.urls.split(','), credentials: { rootCertificate: readFileSync(tls.ca) }, ...fast });
    const rogue = new Etcd3({
      hosts: bed.cluster.urls.split(','),
      credentials: { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.rogueCert), privateKey: readFileSync(tls.rogueKey) },
      ...fast,
    });
    try {
      await assert.rejects(noCert.get(bed.keys.node('p1')).string());
      await assert.rejects(rogue.get(bed.keys.node('p1')).string());
    } finally {
      noCert.close();
      rogue.close();
    }
    assert.throws(() => etcdClientOptions({ urls: bed.cluster.urls, cacert: tls.ca, cert: tls.clientCert }), { code: 'E_ETCD_TLS' });
    assert.throws(() => etcdClientOptions({ urls: bed.cluster.urls }), { code: 'E_ETCD_TLS' });

    // The CLI with --cacert/--cert/--key.
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', `${ROOT}src/cli/main.ts`, 'controller', '--etcd', bed.cluster.urls, '--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey, ...args], {
        encoding: 'utf8',
        cwd: ROOT,
        env: { ...process.env, NODE_NO_WARNINGS: '1' },
      });
    const add = cli('tenant', 'add', 'globex', tenantKeys('globex').publicKey.toString());
    assert.equal(add.status, 0, add.stderr);
    const st = cli('status', '--json');
    assert.equal(st.status, 0, st.stderr);
    const overview = JSON.parse(st.stdout);
    assert.equal(overview.plans['acme/shop'].version, 1);
    assert.deepEqual(Object.keys(overview.members).sort(), ['h1', 'p1', 'p2']);
    const noTls = spawnSync(process.execPath, ['--import', 'tsx', `${ROOT}src/cli/main.ts`, 'controller', '--etcd', bed.cluster.urls, 'tenant', 'ls'], { encoding: 'utf8', cwd: ROOT });
    assert.notEqual(noTls.status, 0);
    assert.match(noTls.stderr, /E_ETCD_TLS/);

    // A device without its own public key: refused at submission, and not planned even when put directly.
    const gen = blueprint([net({ nodes: ['p1', 'p2'], ipRange: '10.9.0.0/16', access: [{ name: 'phone' }] })], { name: 'gen' });
    await assert.rejects(bed.ops.submit(signed(gen)), (e: unknown) => e instanceof ValidationError && e.problems.some((p) => p.code === 'E_DEVICE_KEY_REQUIRED'));
    await bed.client.put(bed.keys.blueprint('acme', 'gen')).value(JSON.stringify(signed(gen)));
    const c = bed.controllers[0];
    await waitFor('the controller refuses it', () => c.lastRound?.blueprints['acme/gen']?.problems.some((p) => p.code === 'E_DEVICE_KEY_REQUIRED'));

    // Scan every value in etcd.
    const all = connectEtcd(bed.etcd);
    let values: string[];
    try {
      const res = await all.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
      values = res.kvs.map((kv) => kv.key.toString() + '\n' + kv.value.toString());
    } finally {
      all.close();
    }
    assert.ok(values.length > 20);
    const secrets = new Map<string, string>();
    for (const a of agents) {
      secrets.set(`identity of ${a.node}`, identity(a.node).privateKey.toString());
      for (const n of a.bed.state.blueprint('acme', 'shop')!.part.networks) {
        const priv = openSealed(n.resource.sealedPrivateKey, identity(a.node).privateKey, sealContext(n.id, a.node));
        secrets.set(`WireGuard key of ${a.node}/${n.name}`, priv.toString());
      }
    }
    secrets.set('tenant secret', tenantKeys('acme').privateKey.toString());
    for (const [what, s] of secrets) {
      for (const v of [s, Buffer.from(s, 'base64').toString('hex')]) assert.ok(!values.some((x) => x.includes(v)), `${what} found in etcd`);
    }
    assert.ok(!values.some((x) => /PrivateKey\s*=|wgQuickConfig/.test(x)), 'no wg-quick config in etcd');
    assert.ok(values.some((x) => x.includes('"sealedPrivateKey":"zs1.')), 'sealed keys are there');
  } finally {
    await bed.close();
  }
});
