// The program a simulated host runs (inside its own network namespace and a mount namespace with a private
// /run): a netns Driver behind a JSON-lines RPC on stdin/stdout. Started by test/helpers/host.ts.
//   request:  {"id": 1, "method": "apply", "params": {...}}
//   response: {"id": 1, "result": ...} | {"id": 1, "error": {"message": ..., "code": ...}}
import { createInterface } from 'node:readline';
import { Key } from '../../src/crypto/index.ts';
import { Driver, ProcessRunner, type BackendChoice, type DesiredResource, type EgressPolicy } from '../../netns/index.ts';

const runner = new ProcessRunner({ record: true });
const exits: { ifname: string; pid: number; exitCode: number | null; signal: string | null }[] = [];
let driver: Driver | null = null;
let underlayMtu: number | undefined;

function getDriver(): Driver {
  if (!driver) throw new Error('init first');
  return driver;
}

type Handler = (p: Record<string, unknown>) => Promise<unknown> | unknown;

const handlers: Record<string, Handler> = {
  async init(p) {
    underlayMtu = p.underlayMtu as number | undefined;
    driver = new Driver({
      runner,
      backend: (p.backend as BackendChoice) ?? 'auto',
      underlayMtu,
      onDaemonExit: (ifname, info) => exits.push({ ifname, ...info }),
      clock: typeof p.clockOffsetMs === 'number' ? () => Date.now() + (p.clockOffsetMs as number) : undefined,
      ...(typeof p.tuning === 'boolean' ? { tuning: p.tuning } : {}),
      ...(typeof p.wireguardGo === 'string' ? { wireguardGo: p.wireguardGo } : {}),
      ...(p.egress ? { egress: p.egress as EgressPolicy } : {}),
    });
    // Like an agent at startup: detect the backend once (the kernel probe is a mutating command).
    return { pid: process.pid, backend: await driver.backendKind() };
  },
  apply(p) {
    return getDriver().apply(p.desired as DesiredResource[], Key.parse(p.identity as string), {
      ...(p.egress ? { egress: p.egress as EgressPolicy } : {}),
      ...(p.readBack === false ? { readBack: false } : {}),
    });
  },
  readActual(p) {
    return getDriver().readActual(p.networkId as string);
  },
  listOwned() {
    return getDriver().listOwned();
  },
  readDevice(p) {
    return getDriver().readDevice(p.networkId as string);
  },
  setPeers(p) {
    return getDriver().setPeers(p.networkId as string, p.peers as DesiredResource['resource']['peers'], p.reset as string[]);
  },
  startHandshakes(p) {
    return getDriver().startHandshakes(p.networkId as string, p.keys as string[]);
  },
  backend() {
    return getDriver().backendKind();
  },
  /** Recorded commands from index `from` on (secret input shows as "<secret>"). */
  log(p) {
    return runner.log.slice((p.from as number) ?? 0);
  },
  logLength() {
    return runner.log.length;
  },
  daemonExits() {
    return exits;
  },
  /** Runs commands one after the other through the runner; returns the elapsed milliseconds. */
  async execMany(p) {
    const cmds = p.cmds as { argv: string[]; netns?: string }[];
    const t0 = performance.now();
    for (const c of cmds) await runner.run(c.argv, { netns: c.netns, mutating: true });
    return performance.now() - t0;
  },
  /** Removes everything this host's driver owns. */
  cleanup() {
    return getDriver().apply([], Key.fromBytes(new Uint8Array(32).fill(7)));
  },
};

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let req: { id: number; method: string; params?: Record<string, unknown> };
  try {
    req = JSON.parse(line);
  } catch {
    return;
  }
  const h = handlers[req.method];
  Promise.resolve()
    .then(() => {
      if (!h) throw new Error(`unknown method ${req.method}`);
      return h(req.params ?? {});
    })
    .then(
      (result) => process.stdout.write(JSON.stringify({ id: req.id, result: result ?? null }) + '\n'),
      (e: unknown) => {
        const err = e as { message?: string; code?: string };
        process.stdout.write(JSON.stringify({ id: req.id, error: { message: err?.message ?? String(e), code: err?.code } }) + '\n');
      },
    );
});
rl.on('close', () => process.exit(0));
process.stdout.write(JSON.stringify({ ready: true, pid: process.pid }) + '\n');
