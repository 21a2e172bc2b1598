// The tenant table is in place before any link of a tenant namespace comes up (issue #18 moved it beside the
// links of a new namespace, so the order is now a property to keep, not a side effect of running last):
//   - a new namespace: its `nft -f` runs beside the tunnel and the bridge; phase B (`ip -force -batch`, which
//     brings links up) does not start while that write is still running;
//   - a write that fails leaves phase B out (the links stay down) and the next apply writes the table first;
//   - an existing namespace whose table is gone gets it back before phase B runs.
// The runner below wraps the fake OS: it holds `nft -f` until the test releases it, or fails it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Driver, type ApplyReport } from '../../netns/index.ts';
import { CommandError, type DaemonHandle, type RunOptions, type RunResult, type Runner } from '../../netns/runner.ts';
import { FakeOs } from '../helpers/fake-os.ts';
import { handPlan } from '../helpers/plan.ts';

const stateDir = mkdtempSync(join(tmpdir(), 'zmesh-fw-first-'));

class GatedRunner implements Runner {
  readonly started: string[] = [];
  /** What happens to the next tenant `nft -f`: held until released, failed, or passed at once. */
  nft: 'hold' | 'fail' | 'pass' = 'pass';
  private release: (() => void) | null = null;
  held = false;
  constructor(readonly os: FakeOs) {}
  open(): void {
    this.release?.();
  }
  async run(argv: string[], opts: RunOptions): Promise<RunResult> {
    const line = `${opts.netns ? '[ns] ' : ''}${argv.join(' ')}`;
    this.started.push(line);
    if (opts.netns && argv[0] === 'nft' && argv[1] === '-f') {
      if (this.nft === 'fail') throw new CommandError(argv, 1, 'Error: Could not process rule: No buffer space available');
      if (this.nft === 'hold') {
        this.held = true;
        await new Promise<void>((r) => (this.release = r));
        this.held = false;
      }
    }
    return this.os.run(argv, opts);
  }
  spawnDaemon(argv: string[]): DaemonHandle {
    return this.os.spawnDaemon(argv);
  }
  netnsExists(name: string): boolean {
    return this.os.netnsExists(name);
  }
}

let beds = 0;
/** A driver over the gated fake OS, and a two-node plan. */
function bed(nft: GatedRunner['nft'] = 'pass') {
  const os = new FakeOs();
  const gate = new GatedRunner(os);
  gate.nft = nft;
  const driver = new Driver({ runner: gate, backend: 'kernel', stateDir, socketDir: join(stateDir, `wg${++beds}`), clock: () => 1_700_000_000_000 });
  const plan = net();
  return { os, gate, driver, plan, d: plan.desired.get('a')!, id: plan.identity.get('a')! };
}

const net = () => handPlan({ ipRange: '10.40.0.0/16', nodes: [{ node: 'a', underlay: '198.51.100.1' }, { node: 'b', underlay: '198.51.100.2' }], seed: 'fw-first' });
const failures = (r: ApplyReport) => r.resources.flatMap((x) => x.failures.map((f) => f.step));
const phaseB = (lines: string[]) => lines.filter((l) => l.startsWith('[ns] ip -force -batch'));

test('a new namespace: phase B does not start while the tenant table is being written', async () => {
  const { gate, driver, d, id } = bed('hold');
  const applying = driver.apply([d], id);
  // Let everything that can run beside the held write run.
  for (let i = 0; i < 50 && !gate.held; i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(gate.held, 'the tenant table write started');
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(phaseB(gate.started), [], 'no link was brought up while the table was not there');
  assert.ok(gate.started.some((l) => l.startsWith('[ns] ip -batch')), 'the bridge was made beside it');
  gate.open();
  const r = await applying;
  assert.ok(r.ok, JSON.stringify(failures(r)));
  assert.equal(phaseB(gate.started).length, 1);
});

test('a failed table write leaves the links down; the next apply writes the table, then brings them up', async () => {
  const { os, gate, driver, plan, d, id } = bed('fail');
  const first = await driver.apply([d], id);
  assert.equal(first.ok, false);
  assert.deepEqual(failures(first), ['tenant nft']);
  assert.deepEqual(phaseB(gate.started), [], 'phase B left out');
  const dump = os.dump();
  assert.match(dump, new RegExp(`link w-${plan.networkId} wireguard mtu \\d+ down`), dump);

  gate.started.length = 0;
  gate.nft = 'pass';
  const second = await driver.apply([d], id);
  assert.ok(second.ok, JSON.stringify(failures(second)));
  const nftAt = gate.started.findIndex((l) => l.startsWith('[ns] nft -f'));
  const upAt = gate.started.findIndex((l) => l.startsWith('[ns] ip -force -batch'));
  assert.ok(nftAt >= 0 && upAt > nftAt, `table (${nftAt}) before phase B (${upAt}): ${gate.started.join(' | ')}`);
  assert.match(os.dump(), new RegExp(`link w-${plan.networkId} wireguard mtu \\d+ up`));
});

test('an existing namespace whose table is gone: the table comes back before phase B touches a link', async () => {
  const { os, gate, driver, plan, d, id } = bed();
  assert.ok((await driver.apply([d], id)).ok);
  // Drift: the table deleted and the tunnel brought down behind the driver's back.
  const ns = os.namespaces.get(`n-${plan.networkId}`)!;
  ns.nft.clear();
  ns.links.get(`w-${plan.networkId}`)!.up = false;
  gate.started.length = 0;
  const r = await driver.apply([d], id);
  assert.ok(r.ok, JSON.stringify(failures(r)));
  const nftAt = gate.started.findIndex((l) => l.startsWith('[ns] nft -f'));
  const upAt = gate.started.findIndex((l) => l.startsWith('[ns] ip -force -batch'));
  assert.ok(nftAt >= 0 && upAt > nftAt, `table (${nftAt}) before phase B (${upAt}): ${gate.started.join(' | ')}`);
});
