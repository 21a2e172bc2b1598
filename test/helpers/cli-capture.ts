// Runs a zmesh program in this process and captures what it writes: exit code, stdout and stderr. Only string
// writes are captured: the test runner's own (binary) reports on stdout pass through untouched.
import type { Command } from 'commander';
import { runMain } from '../../src/cli/util.ts';

export async function runCaptured(program: Command, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const capture = (c: Command): void => {
    c.configureOutput({ writeErr: (t) => err.push(t), writeOut: (t) => out.push(t) });
    c.commands.forEach(capture);
  };
  capture(program);
  const [ow, ew] = [process.stdout.write, process.stderr.write];
  const take = (list: string[], orig: typeof process.stdout.write, stream: NodeJS.WriteStream) =>
    ((t: string | Uint8Array, ...rest: unknown[]) => (typeof t === 'string' ? list.push(t) > 0 : (orig as (...a: unknown[]) => boolean).call(stream, t, ...rest))) as typeof process.stdout.write;
  process.stdout.write = take(out, ow, process.stdout);
  process.stderr.write = take(err, ew, process.stderr);
  process.exitCode = undefined;
  try {
    await runMain(program, ['node', 'zmesh', ...args]);
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
  const code = (process.exitCode as number | undefined) ?? 0;
  process.exitCode = undefined;
  return { code, out: out.join(''), err: err.join('') };
}
