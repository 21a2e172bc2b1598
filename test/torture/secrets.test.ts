// Secrets: while a real agent applies networks, no WireGuard private key appears in any process's argv
// (/proc/*/cmdline sampled during the apply), in the agent's log, in any admin-socket response, or in any file
// that is not 0600 (state directory, the host's /run); the identity key and the state store are 0600.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call } from '../../src/admin/client.ts';
import { openSealed } from '../../src/crypto/seal.ts';
import { sealContext } from '../../src/plan/index.ts';
import { blueprint, net, secretOf, type NodeDef } from '../helpers/fixtures.ts';
import { part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { destroyAgentHost, makeAgentHost, startAgent } from '../helpers/agent-host.ts';

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...walk(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

test('private keys never show in argv, logs, API responses or readable files', { timeout: 120000 }, async () => {
  const peers: NodeDef[] = Array.from({ length: 120 }, (_, i) => ({ id: `p-${i}`, endpoints: [`203.0.113.${i + 2}`] }));
  const nodes: NodeDef[] = [{ id: 'node-a', endpoints: ['203.0.113.1'] }, ...peers];
  const bp = blueprint([net({ nodes: nodes.map((n) => n.id), access: [{ name: 'laptop' }] })]);
  const plan = planFor(bp, nodes);
  const r = plan.networks[0].resources.find((x) => x.node === 'node-a')!;
  const secrets = [
    openSealed(r.sealedPrivateKey, secretOf('node-a'), sealContext(plan.networks[0].id, 'node-a')).toString(),
    secretOf('node-a').toString(),
  ];
  const hex = secrets.map((s) => Buffer.from(s, 'base64').toString('hex'));
  const needles = [...secrets, ...hex];
  const found: string[] = [];
  const scan = (where: string, text: string) => {
    for (const n of needles) if (text.includes(n)) found.push(where);
  };

  const bed = await makeAgentHost({ interval: '1s' });
  let sampling = true;
  let samples = 0;
  const sampler = (async () => {
    while (sampling) {
      for (const d of readdirSync('/proc')) {
        if (!/^\d+$/.test(d)) continue;
        try {
          scan(`/proc/${d}/cmdline`, readFileSync(`/proc/${d}/cmdline`, 'utf8'));
          scan(`/proc/${d}/environ`, readFileSync(`/proc/${d}/environ`, 'utf8'));
        } catch {
          /* gone */
        }
      }
      samples++;
      await new Promise((res) => setImmediate(res));
    }
  })();
  try {
    await startAgent(bed);
    const res = await call<{ networks: { ok: boolean }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(bp), part: part(plan, 'node-a') });
    assert.ok(res.networks[0].ok);
    scan('POST /v1/blueprints response', JSON.stringify(res));
    // Drift: the re-apply sets the private key again.
    await bed.host.exec(['ip', '-n', `n-${plan.networks[0].id}`, 'link', 'del', `w-${plan.networks[0].id}`]);
    await call(bed.socket, 'POST', '/v1/reconcile');
    sampling = false;
    await sampler;
    assert.ok(samples > 5, `only ${samples} samples of /proc`);

    const id = plan.networks[0].id;
    for (const path of ['/v1/status', '/v1/networks', `/v1/networks/${id}`, `/v1/diagnose?network=${id}`, '/v1/events', '/v1/metrics']) {
      scan(`GET ${path}`, JSON.stringify(await call(bed.socket, 'GET', path)));
    }
    scan('agent log', bed.log.join(''));
    for (const f of walk(bed.dir)) {
      const mode = statSync(f).mode & 0o777;
      const text = readFileSync(f).toString('latin1');
      if (needles.some((n) => text.includes(n)) && mode !== 0o600) found.push(`${f} (mode ${mode.toString(8)})`);
      if (/identity\.key$|state\.db/.test(f)) assert.equal(mode & 0o077, 0, `${f} is readable by others`);
    }
    // The host's private /run (pidfiles, wireguard-go sockets and logs): no file holds a key unless 0600.
    const listing = (await bed.host.exec(['find', '/run', '-type', 'f', '-printf', '%m %p\\n'])).stdout.trim().split('\n').filter(Boolean);
    for (const line of listing) {
      const [mode, path] = line.split(' ');
      const content = (await bed.host.exec(['cat', path], { reject: false })).stdout;
      if (needles.some((n) => content.includes(n)) && mode !== '600') found.push(`${path} (mode ${mode})`);
    }
    mkdirSync(new URL('../../bench/results', import.meta.url), { recursive: true });
    writeFileSync(new URL('../../bench/results/torture-secrets.json', import.meta.url), JSON.stringify({ samples, exposures: [...new Set(found)] }, null, 2) + '\n');
    assert.deepEqual([...new Set(found)], [], 'private key exposed');
    process.stdout.write(`secrets: ${samples} samples of every /proc/*/cmdline and environ during apply and repair; 0 exposures\n`);
  } finally {
    sampling = false;
    await sampler;
    await destroyAgentHost(bed);
  }
});
