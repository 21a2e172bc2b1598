// SIGTERM while the agent runs a command (as root). execa's exit handler (signal-exit) re-raises a signal that
// no other listener takes while any command runs; an agent that listened with process.once had given up its
// listener by then, so the re-raised SIGTERM ended it in the middle of its stop: no "agent stopped", the store
// not closed (state.db-wal left behind), a reconcile cut between two commands. Found by agent-upgrade.test.ts.
// Here every `ip`, `nft` and `wg` the agent runs is slowed down (a wrapper first on its PATH), the agent gets
// SIGTERM exactly while one of them runs, and must stop cleanly: exit 0, its log's last word "agent stopped",
// no WAL left, its network and daemon untouched. A second SIGTERM while stopping is ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call } from '../../src/admin/client.ts';
import { blueprint, net } from '../helpers/fixtures.ts';
import { part, planFor, signed } from '../helpers/agent-fixtures.ts';
import { ROOT, destroyAgentHost, makeAgentHost, netnsList, waitFor, wgDaemonPids } from '../helpers/agent-host.ts';

const nodes = ['node-a', 'node-b'];
const acme = blueprint([net({ nodes, ipRange: '10.1.0.0/16' })]);
const plan = planFor(acme, nodes);

/** PIDs of the agent's children that are one of the slowed-down commands. */
function slowChildren(agentPid: number, wrapDir: string): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${agentPid}/task`)) {
    let kids: string[];
    try {
      kids = readFileSync(`/proc/${agentPid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      continue;
    }
    for (const k of kids) {
      try {
        if (readFileSync(`/proc/${k}/cmdline`, 'utf8').includes(wrapDir)) out.push(Number(k));
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

test('SIGTERM while a command runs: the agent still stops cleanly and tears nothing down', { timeout: 120_000 }, async () => {
  const bed = await makeAgentHost({ interval: '1s' });
  try {
    const wrap = join(bed.dir, 'slow-bin');
    mkdirSync(wrap);
    for (const [cmd, real] of [['ip', '/usr/sbin/ip'], ['nft', '/usr/sbin/nft'], ['wg', '/usr/bin/wg']]) {
      writeFileSync(join(wrap, cmd), `#!/bin/sh\n# ${wrap}\nsleep 0.3\nexec ${real} "$@"\n`);
      chmodSync(join(wrap, cmd), 0o755);
    }
    const log: string[] = [];
    const p = bed.host.spawn(['node', '--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'agent', '--config', bed.config], { env: { PATH: `${wrap}:${process.env.PATH}` } });
    p.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
    p.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
    const exited = new Promise<[number | null, string | null]>((r) => p.once('exit', (c, s) => r([c, s])));
    await waitFor(async () => (await call<{ lastReconcile: unknown }>(bed.socket, 'GET', '/v1/status').catch(() => null))?.lastReconcile != null, 60_000, 'the agent to reconcile once');
    const r = await call<{ networks: { ok: boolean }[] }>(bed.socket, 'POST', '/v1/blueprints', { signed: signed(acme), part: part(plan, 'node-a') }, 60_000);
    assert.ok(r.networks[0].ok, JSON.stringify(r));
    const daemons = wgDaemonPids(bed);
    const namespaces = await netnsList(bed);
    assert.equal(daemons.length, 1);
    // Bounded: a reconcile every second, each running slowed commands.
    await waitFor(() => slowChildren(p.pid!, wrap).length > 0, 20_000, 'the agent to be running a command');
    p.kill('SIGTERM');
    await new Promise((res) => setTimeout(res, 50));
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM'); // a second one while stopping
    const [code, sig] = await exited;
    const text = log.join('');
    assert.deepEqual([code, sig], [0, null], `the agent exits 0 by itself; log tail: ${text.slice(-600)}`);
    assert.match(text.trim().split('\n').pop()!, /"msg":"agent stopped"/);
    assert.ok(!existsSync(join(bed.dir, 'state', 'state.db-wal')), 'the store was closed (no WAL left)');
    assert.deepEqual(wgDaemonPids(bed), daemons, 'the daemon runs on');
    assert.deepEqual(await netnsList(bed), namespaces, 'the namespaces stay');
  } finally {
    await destroyAgentHost(bed);
  }
});
