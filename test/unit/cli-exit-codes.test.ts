// One exit-code rule for every command (docs/errors.md): 0 ok, 1 the checked thing failed, 2 invalid input or
// usage. Usage errors used to exit 1 in subcommands (commander's own exit, not overridden below the root).
// In process over every subcommand of the tree (enumerated from the program object): an unknown option, a missing
// argument, an unknown subcommand exit 2 with commander's message on stderr. Then as whole processes, 4 at a
// time, a sample from every group (the cases issue #19 names among them); and the plan fixes: `plan part PLAN
// NODE` at the saved plan's generation, an unknown node, the same version again, --tenant-key with a plain blueprint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { runMain, wantsJson } from '../../src/cli/util.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

function leaves(cmd: Command, path: string[] = []): string[][] {
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  const here = path.length && (cmd.registeredArguments.length || !subs.length || (cmd as unknown as { _actionHandler: unknown })._actionHandler) ? [path] : [];
  return [...here, ...subs.flatMap((c) => leaves(c, [...path, c.name()]))];
}

/** Sends commander's output of every command of the tree to `sink`. */
function capture(cmd: Command, sink: string[]): void {
  cmd.configureOutput({ writeErr: (t) => sink.push(t), writeOut: () => undefined });
  for (const c of cmd.commands) capture(c, sink);
}

/** Runs the tree in process (exit overridden, output captured): the exit code and what went to stderr. */
async function inProcess(args: string[]): Promise<{ code: number | undefined; err: string }> {
  const program = await buildProgram();
  const err: string[] = [];
  capture(program, err);
  process.exitCode = undefined;
  await runMain(program, ['node', 'zmesh', ...args]);
  const code = process.exitCode as number | undefined;
  process.exitCode = undefined;
  return { code, err: err.join('') };
}

test('every subcommand: an unknown option, and a missing argument, are usage errors: exit 2 and a message on stderr', async () => {
  const program = await buildProgram();
  const paths = leaves(program);
  assert.ok(paths.length >= 40, `${paths.length} commands`);
  const find = (path: string[]) => path.reduce((c: Command, n) => c.commands.find((s) => s.name() === n)!, program);
  const wrong: string[] = [];
  for (const path of paths) {
    const r = await inProcess([...path, '--no-such-option-anywhere']);
    if (r.code !== 2 || !/^error: /m.test(r.err)) wrong.push(`${path.join(' ')} --no-such-option-anywhere: exit ${r.code}, ${JSON.stringify(r.err)}`);
    if (find(path).registeredArguments.some((a) => a.required)) {
      const m = await inProcess(path);
      if (m.code !== 2 || !/^error: /m.test(m.err)) wrong.push(`${path.join(' ')} (no arguments): exit ${m.code}, ${JSON.stringify(m.err)}`);
    }
  }
  for (const group of program.commands.filter((c) => c.commands.length > 0)) {
    const r = await inProcess([group.name(), 'no-such-subcommand']);
    if (r.code !== 2 || !/^error: /m.test(r.err)) wrong.push(`${group.name()} no-such-subcommand: exit ${r.code}, ${JSON.stringify(r.err)}`);
  }
  assert.deepEqual(wrong, []);
});

/** Runs a whole process (async, so that several run at once). */
function zmeshAsync(...args: string[]): Promise<{ code: number | null; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, timeout: 30000, env: { ...process.env, NO_COLOR: '1' } }, (e, _out, err) => {
      resolve({ code: e ? (((e as { code?: unknown }).code as number) ?? null) : 0, err: String(err) });
    });
  });
}

test('whole processes, a sample from every group of commands (4 at a time): usage errors exit 2 with a message', async () => {
  const bp = join(ROOT, 'examples/tenant-blueprint.yaml');
  const sample = [
    ['sign', bp], // issue #19: no --key
    ['validate'],
    ['keygen', 'foo'],
    ['plan', 'part', 'plan.json', 'node-a', '--bogus'],
    ['net', 'show', '--bogus'],
    ['agent', '--config', 'x.yaml', '--bogus'],
    ['lab', 'up', '--bogus'],
    ['controller', 'node', 'approve', 'a'],
    ['vol', 'ls', '--bogus'],
    ['completion', 'ksh'],
  ];
  const wrong: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < sample.length) {
        const args = sample[next++];
        const r = await zmeshAsync(...args);
        if (r.code !== 2 || !/^error: /m.test(r.err)) wrong.push(`${args.join(' ')}: exit ${r.code}, ${JSON.stringify(r.err)}`);
      }
    }),
  );
  assert.deepEqual(wrong, []);
});

function zmesh(_cwd: string, ...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30000, env: { ...process.env, NO_COLOR: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('whole processes: help and version exit 0; the plan fixes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-cli-'));
  try {
    const bp = join(ROOT, 'examples/tenant-blueprint.yaml');
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

test('--json (or -o json) makes errors JSON too, as ZMESH_JSON_ERRORS=1 does; text otherwise', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zmesh-jsonerr-'));
  try {
    const env = { ...process.env, ZMESH_JSON_ERRORS: '', ZMESH_SOCKET: join(dir, 'none.sock') };
    const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30000, env });
    const missing = run('validate', 'nothere-zmesh.yaml', '--json');
    assert.equal(missing.status, 2);
    const e = JSON.parse(missing.stderr.trim());
    assert.equal(e.code, 'E_FILE');
    assert.equal(e.kind, 'invalid');
    assert.match(e.message, /nothere-zmesh\.yaml does not exist/);
    const usage = run('net', 'ls', '-o', 'json', '--bogus');
    assert.equal(usage.status, 2);
    assert.equal(JSON.parse(usage.stderr.trim()).code, 'E_USAGE');
    const down = run('net', 'ls', '-o', 'json');
    assert.equal(down.status, 1);
    assert.equal(typeof JSON.parse(down.stderr.trim()).code, 'string');
    const text = run('validate', 'nothere-zmesh.yaml');
    assert.equal(text.status, 2);
    assert.match(text.stderr, /^zmesh: E_FILE: nothere-zmesh\.yaml does not exist/);
    // After `--` it is an operand, not a request for JSON.
    assert.equal(wantsJson(['lab', 'exec', 'x', 'n', '--', 'tool', '--json']), false);
    assert.equal(wantsJson(['status', '--output=json']), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
