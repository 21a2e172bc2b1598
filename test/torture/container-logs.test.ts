// A workload floods its stdout/stderr (from a red-team review of issue #14). Docker's json-file driver writes every line into
// <data-root>/containers/<id>/<id>-json.log, on the engine's disk and outside the workload's disk limit.
// The runtime's createOptions sets LogConfig max-size/max-file: measure that it holds, also for output that
// the json encoding inflates (NUL bytes become "\u0000", 6x) and for one endless line (16 KiB partials).
// And core dumps: RLIMIT_CORE is 0:0 in a workload (where core_pattern pipes to a host service, cores would land
// on the host's disk, outside the disk limit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_IMAGE, baseImageTar, importImage } from '../../runtime/index.ts';
import { DockerEngine, createOptions } from '../../runtime/engine.ts';
import { dexec, startDockerd, type PrivateDockerd } from '../helpers/dockerd.ts';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function dirBytes(dir: string): { total: number; files: Record<string, number> } {
  const files: Record<string, number> = {};
  let total = 0;
  for (const f of readdirSync(dir)) {
    const st = statSync(join(dir, f));
    if (st.isFile()) {
      files[f] = st.size;
      total += st.size;
    }
  }
  return { total, files };
}

test('a stdout flood stays within the json-file cap on the engine disk; no core dumps', { timeout: 300_000 }, async (t) => {
  let dockerd: PrivateDockerd | null = null;
  const ids: string[] = [];
  try {
    dockerd = await startDockerd({ dataSize: 3 * 1024 ** 3 });
    const docker = dockerd.docker;
    await importImage(docker, baseImageTar(), BASE_IMAGE);
    const engine = new DockerEngine(dockerd.socket);
    t.diagnostic(`LogConfig in createOptions: ${JSON.stringify(createOptions({ name: 'x', image: BASE_IMAGE, command: [], hostname: 'x', labels: {}, nanoCpus: 1e9, memory: 64 * MiB, disk: 32 * MiB, mounts: [] }).HostConfig?.LogConfig)}`);
    const floods: [string, string][] = [
      // 30 MiB of NUL bytes, no newline at all: json escaping inflates it to ~180 MiB uncapped.
      ['nul', 'dd if=/dev/zero bs=65536 count=480 2>/dev/null; echo done'],
      // 32 MiB of short lines on stderr (per-line json overhead ~ 60 bytes per 11-byte line: ~200 MiB uncapped).
      ['lines', 'yes ABCDEFGHIJ | head -c 33554432 >&2; echo done'],
    ];
    for (const [tag, script] of floods) {
      const id = await engine.create({ name: `rt2-log-${tag}-${Date.now()}`, image: BASE_IMAGE, command: ['sh', '-c', script], hostname: tag, labels: { 'zmesh.test': 'container-logs' }, nanoCpus: 1e9, memory: 64 * MiB, disk: 32 * MiB, mounts: [] });
      ids.push(id);
      await engine.start(id);
    }
    // Bounded wait for both to exit.
    for (let i = 0; i < 240; i++) {
      const states = await Promise.all(ids.map((id) => engine.inspect(id)));
      if (states.every((s) => s && !s.running)) break;
      await sleep(500);
    }
    const results: Record<string, unknown> = {};
    for (const id of ids) {
      const st = await engine.inspect(id);
      const hc = (await docker.getContainer(id).inspect()).HostConfig.LogConfig;
      const d = dirBytes(join(dockerd.dataRoot, 'containers', id));
      const logs = Object.entries(d.files).filter(([f]) => f.includes('-json.log')).reduce((s, [, n]) => s + n, 0);
      results[st!.name] = { running: st!.running, exit: st!.exitCode, logConfig: hc, logFilesBytes: logs, files: d.files };
      t.diagnostic(`${st!.name}: exit ${st!.exitCode}, json logs on the engine disk ${(logs / MiB).toFixed(1)} MiB, files ${JSON.stringify(d.files)}`);
      // Cap: max-file 2 x max-size 10m, plus one message of slack.
      assert.ok(logs <= 21 * MiB, `${st!.name}: ${logs} bytes of logs exceed the cap`);
    }
    // Core dumps: the workload's RLIMIT_CORE and the kernel's core_pattern (not namespaced).
    const probe = await engine.create({ name: `rt2-core-${Date.now()}`, image: BASE_IMAGE, command: ['sleep', '60'], hostname: 'core', labels: { 'zmesh.test': 'container-logs' }, nanoCpus: 1e9, memory: 64 * MiB, disk: 32 * MiB, mounts: [] });
    ids.push(probe);
    await engine.start(probe);
    const lim = await dexec(docker, probe, ['sh', '-c', 'grep -i core /proc/self/limits; cat /proc/sys/kernel/core_pattern']);
    t.diagnostic(`in the workload: ${lim.out.replace(/\s+/g, ' ').trim()}`);
    t.diagnostic(`host core_pattern: ${readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim()}`);
    assert.match(lim.out, /Max core file size\s+0\s+0\s/, 'no core dumps, and the workload cannot raise the limit');
    assert.notEqual((await dexec(docker, probe, ['sh', '-c', 'ulimit -c unlimited'])).exitCode, 0, 'raising RLIMIT_CORE fails');
  } finally {
    if (dockerd) {
      for (const id of ids) await dockerd.docker.getContainer(id).remove({ force: true }).catch(() => undefined);
      await dockerd.stop().catch(() => undefined);
    }
  }
});
