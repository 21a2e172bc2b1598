// One exit-code rule for every command (docs/errors.md): 0 ok, 1 the checked thing failed, 2 invalid input or
// usage. Usage errors used to exit 1 in subcommands (commander's own exit, not overridden below the root).
// In process over every subcommand of the tree; then as whole processes for the cases issue #19 names, and the
// plan fixes: `plan part PLAN NODE` at the saved plan's generation, an unknown node, the same version again,
// --tenant-key with a plain blueprint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { runMain } from '../../src/cli/util.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

function leaves(cmd: Command, path: string[] = []): string[][] {
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  const here = path.length && (cmd.registeredArguments.length || !subs.length || (cmd as unknown as { _actionHandler: unknown })._actionHandler) ? [path] : [];
  return [...here, ...subs.flatMap((c) => leaves(c, [...path, c.name()]))];
}

function quiet(cmd: Command): void {
  cmd.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  for (const c of cmd.commands) quiet(c);
}

test('every subcommand: an unknown option is a usage error, exit 2', async () => {
  const paths = leaves(await buildProgram());
  assert.ok(paths.length >= 40, `${paths.length} commands`);
  const wrong: string[] = [];
  for (const path of paths) {
    const program = await buildProgram();
    quiet(program);
    process.exitCode = undefined;
    await runMain(program, ['node', 'zmesh', ...path, '--no-such-option-anywhere']);
    if (process.exitCode !== 2) wrong.push(`${path.join(' ')}: exit ${process.exitCode}`);
  }
  process.exitCode = undefined;
  assert.deepEqual(wrong, []);
});

function zmesh(_cwd: string, ...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30000, env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('whole processes: usage errors exit 2, help and version 0; the plan fixes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-cli-'));
  try {
    const bp = join(ROOT, 'examples/tenant-blueprint.yaml');
    // Usage errors named in issue #19.
    for (const args of [['sign', bp], ['validate'], ['keygen', 'foo'], ['plan'], ['controller', 'node', 'approve', 'a']]) {
      const r = zmesh(dir, ...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /error: /, args.join(' '));
    }
    assert.equal(zmesh(dir, '--help').code, 0);
    assert.equal(zmesh(dir, 'plan', '--help').code, 0);
    assert.equal(zmesh(dir, '--version').code, 0);

    // A plan, then what node-a receives from it: exactly its part at the plan's own generation, whatever later runs plan.
    const nodes = join(dir, 'nodes.yaml');
    const ids = ['node-a', 'node-b', 'node-c', 'node-d'];
    const keys = ids.map((id) => zmesh(dir, 'keygen', 'node', join(dir, `${id}.key`)).out.trim());
    const inv = ids.map((id, i) => `  - {id: ${id}, publicKey: "${keys[i]}", endpoints: [203.0.113.${i + 1}]}`).join('\n');
    writeFileSync(nodes, `nodes:\n${inv}\n`);
    const mine = bp; // the example blueprint: node-a … node-d
    const planFile = join(dir, 'plan.json');
    const made = zmesh(dir, 'plan', mine, '--nodes', nodes, '--out', planFile);
    assert.equal(made.code, 0, made.err);
    const plan = JSON.parse(readFileSync(planFile, 'utf8')) as { generation: number; networks: { resources: { node: string; publicKey: string }[] }[] };
    const part = zmesh(dir, 'plan', 'part', planFile, 'node-a');
    assert.equal(part.code, 0, part.err);
    const p = JSON.parse(part.out) as { generation: number; networks: { resource: { node: string; publicKey: string } }[] };
    assert.equal(p.generation, plan.generation);
    assert.equal(p.networks[0].resource.publicKey, plan.networks[0].resources.find((r) => r.node === 'node-a')!.publicKey, "the saved plan's key, not a new one");
    assert.equal(zmesh(dir, 'plan', 'part', planFile, 'node-a').out, part.out, 'the same part every time');
    const unknown = zmesh(dir, 'plan', 'part', planFile, 'node-z');
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /E_NODE_UNKNOWN: node: the plan of .* has no part for node node-z/);
    assert.match(unknown.err, /one of: node-a, node-b, node-c, node-d/);
    assert.equal(zmesh(dir, 'plan', mine, '--nodes', nodes, '--part', 'node-z').code, 2);

    // The same version again over --previous: refused (agents would call it a replay), unless asked for.
    const again = zmesh(dir, 'plan', mine, '--nodes', nodes, '--previous', planFile);
    assert.equal(again.code, 2);
    assert.match(again.err, /E_SAME_VERSION/);
    assert.equal(zmesh(dir, 'plan', mine, '--nodes', nodes, '--previous', planFile, '--allow-same-version').code, 0);

    // --tenant-key with a plain blueprint: an error, not silently ignored.
    const tk = zmesh(dir, 'plan', mine, '--nodes', nodes, '--tenant-key', keys[0]);
    assert.equal(tk.code, 2);
    assert.match(tk.err, /E_TENANT_KEY_UNSIGNED/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
