// A child process for the descriptor-exhaustion tests: waits until its parent lowered its RLIMIT_NOFILE
// (prlimit --pid), then fills every free descriptor and runs commands through the real ProcessRunner while none
// is left, then frees some and runs again. Prints one JSON line with what happened; exits 0 if it survived.
//   node --import tsx test/helpers/emfile-child.ts
import { closeSync, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ProcessRunner } from '../../netns/runner.ts';

const runner = new ProcessRunner({ secretDir: process.env.SECRET_DIR });
const held: number[] = [];
const out: Record<string, unknown> = {};
const describe = (e: unknown) => {
  const err = e as { code?: string; kind?: string; message?: string; exitCode?: number; name?: string };
  return { name: err?.name, code: err?.code, kind: err?.kind, exitCode: err?.exitCode, message: String(err?.message ?? e).slice(0, 300) };
};

process.stdout.write('ready\n');
createInterface({ input: process.stdin }).once('line', () => {
  void (async () => {
    for (;;) {
      try {
        held.push(openSync('/dev/null', 'r'));
      } catch (e) {
        out.filled = { held: held.length, code: (e as NodeJS.ErrnoException).code };
        break;
      }
    }
    out.run = await runner.run(['true'], { mutating: false }).then(() => 'ok', describe);
    out.runNetns = await runner.run(['true'], { mutating: false, netns: 'zmesh-none' }).then(() => 'ok', describe);
    out.secretFile = await runner.run(['true'], { mutating: true, secretFile: 'x' }).then(() => 'ok', describe);
    try {
      runner.spawnDaemon(['sleep', '5']);
      out.daemon = 'started';
    } catch (e) {
      out.daemon = describe(e);
    }
    // Give node's queued spawn 'error' events a chance to crash the process, as they did before.
    await new Promise((r) => setTimeout(r, 200));
    for (const fd of held.splice(0, 32)) closeSync(fd);
    out.afterFree = await runner.run(['echo', 'back'], { mutating: false }).then((r) => r.stdout.trim(), describe);
    for (const fd of held.splice(0)) closeSync(fd);
    process.stdout.write(JSON.stringify(out) + '\n');
  })();
});
