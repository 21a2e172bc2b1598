// Faults on the quickstart lab, each followed by recovery to a green matrix within a stated bound:
//   cut → restore: green within 30 s of the restore     loss 40 % → restore: green within 30 s
//   delay 150 ms: still green, RTTs through the node grow by the delay; restore: green within 30 s
//   kill-agent: the data plane keeps running (green within 30 s); restart-agent: green within 30 s
//   reboot of the hidden node: green within 60 s; reboot of its public access node: green within 60 s
//   (WireGuard re-handshakes after REKEY_TIMEOUT + KEEPALIVE: ~15–20 s); reboot of the laptop: 30 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { downAndCheck, labDir, labExecArgv, labFault, labMatrix, labUp, labWaitGreen, openLab, type FaultKind } from '../../labs/index.ts';

const SPEC = fileURLToPath(new URL('../../labs/quickstart.yaml', import.meta.url));
const root = mkdtempSync('/tmp/zmesh-lab-test-');
process.env.ZMESH_LAB_DIR = root;
const name = `fl-${randomBytes(3).toString('hex')}`;

function exec(host: string, argv: string[]): string {
  const a = labExecArgv(name, host, argv);
  try {
    return execFileSync(a[0], a.slice(1), { encoding: 'utf8', timeout: 30000 });
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? '');
  }
}

/** Underlay ping from a node to another host's underlay address: [loss %, avg RTT ms]. */
function underlayPing(from: string, to: string, count: number): [number, number | null] {
  const addr = openLab(name).layout.nodes.find((n) => n.name === to)!.address;
  const out = exec(from, ['ping', '-n', '-q', '-c', String(count), '-i', '0.02', '-W', '1', addr]);
  const loss = Number(/(\d+(?:\.\d+)?)% packet loss/.exec(out)?.[1] ?? 100);
  const avg = /= [\d.]+\/([\d.]+)\//.exec(out);
  return [loss, avg ? Number(avg[1]) : null];
}

test('faults and recovery on the quickstart lab', { timeout: 600_000 }, async (t) => {
  const dir = labDir(name);
  const left: string[] = [];
  const times: Record<string, number> = {};
  const recover = async (label: string, boundSec: number, t0 = Date.now()) => {
    const r = await labWaitGreen(name, boundSec * 1000);
    const secs = (Date.now() - t0) / 1000;
    times[label] = Math.round(secs * 10) / 10;
    t.diagnostic(`${label}: green again after ${secs.toFixed(1)} s (bound ${boundSec} s)`);
    assert.ok(r.green, `${label}: not green within ${boundSec} s: ${JSON.stringify(r.matrix.filter((p) => !p.ok).slice(0, 4))}`);
  };
  const fault = async (node: string, kind: FaultKind, value?: number) => {
    const t0 = Date.now();
    await labFault(name, node, kind, value);
    return t0;
  };
  try {
    const s = await labUp(SPEC, { name });
    assert.ok(s.green, 'the lab starts green');
    const plan = openLab(name).plans.find((p) => p.plan.tenant === 'blue')!.plan;
    const access = plan.networks[0].resources.find((r) => r.node === 'node-c')!.accessNode!;
    const other = access === 'node-a' ? 'node-b' : 'node-a';
    t.diagnostic(`node-c enters through ${access}`);

    // cut: the node's tunnels fail (and only those), isolation holds; restore brings it back.
    await fault(other, 'cut');
    const cut = await labMatrix(name);
    assert.ok(cut.some((p) => p.expect === 'reach' && !p.ok && (p.from.endsWith(`@${other}`) || p.to.endsWith(`@${other}`))), 'cut breaks the node');
    assert.ok(cut.every((p) => p.ok || p.from.endsWith(`@${other}`) || p.to.endsWith(`@${other}`) || p.to.endsWith('@laptop') || p.from.endsWith('@laptop')), 'only pairs through the cut node fail');
    assert.ok(cut.filter((p) => p.expect === 'isolated').every((p) => p.ok), 'isolation holds while cut');
    await recover('cut → restore', 30, await fault(other, 'restore'));

    // loss: visible on the underlay, then restore.
    await fault(other, 'loss', 40);
    const [loss] = underlayPing(other, access, 100);
    t.diagnostic(`underlay loss with loss 40: ${loss}%`);
    assert.ok(loss >= 15 && loss <= 70, `loss ${loss}%`);
    await recover('loss 40 → restore', 30, await fault(other, 'restore'));

    // delay: still green, and the RTT through the node grows by the delay (one way, on its egress).
    await fault(other, 'delay', 150);
    const [, rtt] = underlayPing(other, access, 5);
    assert.ok(rtt !== null && rtt >= 150 && rtt < 600, `underlay RTT ${rtt} ms with delay 150`);
    const slow = await labWaitGreen(name, 30000);
    assert.ok(slow.green, 'green with 150 ms delay');
    // (blue's network has a policy: the pair has an ICMP row, timed, and TCP rows)
    const via = slow.matrix.filter((p) => p.expect === 'reach' && p.proto === 'icmp' && p.family === 4 && p.from === `blue/office/lan@${other}` && p.to === `blue/office/lan@${access}`);
    assert.ok(via.length === 1 && via[0].rttMs! >= 150, `tunnel RTT ${via[0]?.rttMs} ms`);
    await recover('delay 150 → restore', 30, await fault(other, 'restore'));

    // kill-agent: the data plane keeps running without its agent.
    await recover('kill-agent', 30, await fault(access, 'kill-agent'));
    await recover('restart-agent', 30, await fault(access, 'restart-agent'));

    // reboot: namespaces torn down (every process in them killed) and rebuilt; the agent comes back from its
    // state directory alone and re-creates its tenant networks from its store.
    await recover('reboot hidden node', 60, await fault('node-c', 'reboot'));
    await recover('reboot access node', 60, await fault(access, 'reboot'));
    await recover('reboot laptop', 30, await fault('laptop', 'reboot'));
    t.diagnostic(`recovery times (s): ${JSON.stringify(times)}`);
  } finally {
    left.push(...(await downAndCheck(name, dir)));
    rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(left, [], 'lab down left things behind');
});
