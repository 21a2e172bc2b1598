// `zmesh controller …`: the etcd control plane. `zmesh controller --etcd URLS` runs the controller in the
// foreground; the subcommands manage tenants and blueprints, ask for a rebalance, and show the state.
import type { Command } from 'commander';
import { ZmeshError } from '../errors.ts';
import { printList, readJsonDocument } from './lazy.ts';
import { colour, table, withOutputOption } from './text.ts';

interface EtcdFlags {
  etcd?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  prefix?: string;
}

interface RunFlags extends EtcdFlags {
  signingKey?: string;
  operatorKey: string[];
  grace: string;
  holdDown: string;
  debounce: string;
  maxTxnOps: string;
  logLevel: string;
}

const c = () => colour(Boolean(process.stdout.isTTY) && !process.env.NO_COLOR);

/** Text a node wrote, made safe for a terminal: control characters (C0, DEL, C1) replaced, at most 120 characters. */
export function printable(v: unknown): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return String(v).replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').slice(0, 120);
}

/** URLs and TLS files: each from its flag, its variable (ZMESH_ETCD, ZMESH_ETCD_CACERT, …), the CLI config file. */
async function etcdOptions(f: EtcdFlags) {
  const { resolveEtcd } = await import('./config.ts');
  const { urls, ...tls } = resolveEtcd(f);
  if (!urls) throw new ZmeshError('E_ETCD_URLS', 'no etcd URLs', { hint: 'pass --etcd http://host:2379[,…], set ZMESH_ETCD, or write etcd.endpoints in the CLI config (docs/cli-config.md)' });
  return { urls, ...tls };
}

async function duration(v: string, what: string): Promise<number> {
  const { parseDuration } = await import('../units.ts');
  const ms = v === '0' ? 0 : parseDuration(v);
  if (ms === null) throw new ZmeshError('E_DURATION', `${what} is a duration like 30s, 15m`, { path: what, hint: 'write e.g. 5s' });
  return ms;
}

async function withOps<T>(f: EtcdFlags, fn: (ops: import('../control/ops.ts').ControlOps) => Promise<T>): Promise<T> {
  const { connectEtcd } = await import('../control/etcd.ts');
  const { ControlOps } = await import('../control/ops.ts');
  const client = connectEtcd(await etcdOptions(f));
  try {
    return await fn(new ControlOps(client, f.prefix));
  } finally {
    client.close();
  }
}

export function registerControlCommands(program: Command): void {
  const ctl = program
    .command('controller')
    .description('the etcd control plane: run the controller (no subcommand), or manage tenants and blueprints')
    .option('--etcd <urls>', 'etcd client URLs, comma-separated (default $ZMESH_ETCD, then the CLI config)')
    .option('--cacert <file>', 'CA of the etcd servers (https URLs)')
    .option('--cert <file>', 'client certificate for etcd')
    .option('--key <file>', 'client key for etcd')
    .option('--prefix <prefix>', 'etcd key prefix', '/zmesh/v1')
    .option('--grace <duration>', 'a node whose lease expired is still planned as registered this long', '5s')
    .option('--hold-down <duration>', 'then it is planned as a hidden node (keeping its subnet, port and keys) this long before it is dropped', '15m')
    .option('--debounce <duration>', 'quiet time before re-planning after a change', '300ms')
    .option('--max-txn-ops <n>', "operations per etcd transaction (etcd's --max-txn-ops)", '128')
    .option('--log-level <level>', 'log level: trace, debug, info, warn, error, fatal or silent', 'info')
    .option('--signing-key <file>', 'the controller ed25519 secret (zmesh keygen controller): every node part is signed with it')
    .option('--operator-key <pubkey>', 'an operator ed25519 public key (zmesh keygen operator); only enrollments it signed count (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .action(async (flags: RunFlags) => {
      const { Controller } = await import('../control/controller.ts');
      const { createLogger, isLevel, LEVELS } = await import('../log.ts');
      if (!isLevel(flags.logLevel)) throw new ZmeshError('E_USAGE', `--log-level ${JSON.stringify(flags.logLevel)} is not a log level`, { hint: `one of ${Object.keys(LEVELS).join(', ')}` });
      const { publicKeyArg, readSecretKeyFile } = await import('./blueprint-actions.ts');
      const { Key } = await import('../crypto/keys.ts');
      const log = createLogger({ level: flags.logLevel, base: { component: 'controller' } });
      const maxTxnOps = Number(flags.maxTxnOps);
      if (!Number.isInteger(maxTxnOps) || maxTxnOps < 8) throw new ZmeshError('E_USAGE', '--max-txn-ops is an integer ≥ 8', { hint: 'use the value etcd runs with (default 128)' });
      const controller = new Controller({
        etcd: await etcdOptions(flags),
        prefix: flags.prefix,
        log,
        graceMs: await duration(flags.grace, 'grace'),
        holdDownMs: await duration(flags.holdDown, 'hold-down'),
        debounceMs: await duration(flags.debounce, 'debounce'),
        maxTxnOps,
        signingKey: flags.signingKey ? readSecretKeyFile(flags.signingKey, ['controller']) : undefined,
        operatorKeys: flags.operatorKey.map((given, i) => {
          const k = publicKeyArg(given, '--operator-key', ['operator']);
          if (!Key.isValid(k)) throw new ZmeshError('E_KEY_FORMAT', `--operator-key ${k} is not a base64 ed25519 public key`, { path: `operatorKey[${i}]`, hint: 'pass what `zmesh keygen operator` printed' });
          return k;
        }),
      });
      controller.start();
      log.info({ id: controller.id }, 'controller started; campaigning for leadership');
      await new Promise<void>((resolve) => {
        let stopping = false;
        const onSignal = (sig: string) => {
          if (stopping) return void process.stderr.write(`zmesh controller: ${sig} again, still stopping\n`);
          stopping = true;
          process.stderr.write(`zmesh controller: ${sig}, stopping\n`);
          controller.stop().then(resolve, resolve);
        };
        // `on`, not `once` (as the agent): a second signal must not end the process in the middle of its stop.
        process.on('SIGTERM', () => onSignal('SIGTERM'));
        process.on('SIGINT', () => onSignal('SIGINT'));
      });
    });

  const g = (cmd: Command) => cmd.optsWithGlobals() as EtcdFlags;

  const tenant = ctl.command('tenant').description('tenants and their ed25519 public keys');
  tenant
    .command('add')
    .argument('<name>')
    .argument('<pubkey>', "the tenant's ed25519 public key (zmesh keygen tenant), or its --public-out file")
    .description('register a tenant (or replace its key)')
    .action(async (name: string, pubkey: string, _f: unknown, cmd: Command) => {
      const { publicKeyArg } = await import('./blueprint-actions.ts');
      const key = publicKeyArg(pubkey, 'the tenant key');
      await withOps(g(cmd), (ops) => ops.addTenant(name, key));
      process.stdout.write(`tenant ${name} registered\n`);
    });
  withOutputOption(tenant.command('ls').description('registered tenants and their keys').option('--json', 'print JSON'))
    .action(async (flags: { json?: boolean; output?: string }, cmd: Command) => {
      const t = await withOps(g(cmd), (ops) => ops.tenants());
      const rows = Object.entries(t).map(([name, key]) => ({ tenant: name, key }));
      await printList(flags, t, rows, () => table([['TENANT', 'KEY'], ...Object.entries(t)]), 'no tenants');
    });
  tenant
    .command('rm')
    .argument('<name>')
    .action(async (name: string, _f: unknown, cmd: Command) => {
      await withOps(g(cmd), (ops) => ops.removeTenant(name));
      process.stdout.write(`tenant ${name} removed\n`);
    });

  const node = ctl.command('node').description("node enrollment: only nodes whose identity key is pinned here are planned");
  node
    .command('approve')
    .argument('<id>', 'the node id (nodeId in its agent config)')
    .argument('<pubkey>', "the node's X25519 identity public key (zmesh keygen node, or `zmesh status` on the node), or its --public-out file")
    .option('--replace', 'replace another key pinned for this node (a re-installed node: its resources get new keys)')
    .option('--sign <file>', 'sign the enrollment with this operator secret (zmesh keygen operator); needed when the controller runs with --operator-key')
    .option('--no-rbac', "do not create the node's etcd user and role (zmesh-node-ID: its own keys only)")
    .description("pin a node's identity key; registrations signed by any other key are refused and reported")
    .action(async (id: string, given: string, flags: { replace?: boolean; rbac: boolean; sign?: string }, cmd: Command) => {
      const { publicKeyArg, readSecretKeyFile } = await import('./blueprint-actions.ts');
      const pubkey = publicKeyArg(given, 'the node key', ['node']);
      const operatorKey = flags.sign ? readSecretKeyFile(flags.sign, ['operator']) : undefined;
      const r = await withOps(g(cmd), async (ops) => {
        // The role first: the controller reads the node roles again when an enrollment changes, and a role made
        // after it (the order before) could be missed — the node was then planned but never granted its
        // envelopes ("cannot read the signed blueprint yet" until the next enrollment anywhere).
        if (flags.rbac) {
          // Only for a valid id (a DNS label): approveNode checks it too, but after the role would exist.
          const { LABEL } = await import('../control/ops.ts');
          if (LABEL.test(id)) {
            const { Rbac } = await import('../control/rbac.ts');
            await new Rbac(ops.client, ops.keys).ensureNode(id);
          }
        }
        return ops.approveNode(id, pubkey, { replace: flags.replace, operatorKey });
      });
      const { nodeRole } = await import('../control/rbac.ts');
      process.stdout.write(`node ${id} ${r.changed ? 'enrolled' : 'already enrolled'} with key ${pubkey}${flags.rbac ? `; its etcd client certificate's CN is ${nodeRole(id)}` : ''}\n`);
    });
  node
    .command('revoke')
    .argument('<id>')
    .option('--no-rbac', "leave the node's etcd user and role")
    .description('remove a node: it is dropped from every plan at once, and its etcd user and role are deleted')
    .action(async (id: string, flags: { rbac: boolean }, cmd: Command) => {
      await withOps(g(cmd), async (ops) => {
        await ops.revokeNode(id);
        if (flags.rbac) {
          const { Rbac } = await import('../control/rbac.ts');
          await new Rbac(ops.client, ops.keys).removeNode(id);
        }
      });
      process.stdout.write(`node ${id} revoked\n`);
    });
  withOutputOption(node.command('ls').option('--json', 'print JSON').description('enrolled nodes and registrations: trusted, pending approval, or refused (and why)'))
    .action(async (flags: { json?: boolean; output?: string }, cmd: Command) => {
      const o = await withOps(g(cmd), (ops) => ops.overview());
      const untrusted = o.controller?.untrusted ?? {};
      const ids = [...new Set([...Object.keys(o.enrollments), ...Object.keys(o.registrations), ...Object.keys(untrusted)])].sort();
      const rows = ids.map((id) => {
        const u = untrusted[id];
        const state = u ? u.state : o.registrations[id] ? 'trusted' : o.enrollments[id] ? 'not registered' : 'unknown';
        return { id, state, pinnedKey: o.enrollments[id]?.publicKey ?? null, signer: u?.signer ?? (o.registrations[id] ? o.enrollments[id]?.publicKey ?? null : null), problem: u?.problem ?? null };
      });
      const k = c();
      const paint = (s: string) => (s === 'trusted' ? k.green(s) : s === 'refused' ? k.red(s) : k.yellow(s));
      await printList(flags, rows, rows, () => table([['NODE', 'STATE', 'PINNED KEY', 'PROBLEM'], ...rows.map((r) => [r.id, paint(r.state), r.pinnedKey ?? '-', r.problem ? `${r.problem.code}: ${r.problem.message}` : '-'])]), 'no nodes');
    });

  ctl
    .command('auth')
    .description('etcd RBAC')
    .command('enable')
    .description('create the root and zmesh-controller users (client certificate CNs root, zmesh-controller) and turn etcd auth on')
    .action(async (_f: unknown, cmd: Command) => {
      await withOps(g(cmd), async (ops) => {
        const { Rbac } = await import('../control/rbac.ts');
        await new Rbac(ops.client, ops.keys).enable();
      });
      process.stdout.write('etcd auth enabled: users root and zmesh-controller (role root); approve nodes with `zmesh controller node approve`\n');
    });

  ctl
    .command('apply')
    .description('submit a signed blueprint (verified against the tenant key in etcd); the controller plans it')
    .argument('<signed>', 'signed envelope (zmesh sign), or - for stdin')
    .action(async (file: string, _f: unknown, cmd: Command) => {
      const envelope = await readJsonDocument(file, ['signed']);
      const r = await withOps(g(cmd), (ops) => ops.submit(envelope));
      process.stdout.write(`submitted ${r.tenant}/${r.name} version ${r.version}\n`);
    });

  ctl
    .command('remove')
    .description('remove a blueprint: every node tears its networks down')
    .argument('<tenant>')
    .argument('<blueprint>')
    .action(async (tenantName: string, name: string, _f: unknown, cmd: Command) => {
      await withOps(g(cmd), (ops) => ops.remove(tenantName, name));
      process.stdout.write(`removed ${tenantName}/${name}\n`);
    });

  ctl
    .command('rebalance')
    .description('move hidden nodes from over-loaded access nodes to the least loaded public nodes (the only way assignments move back)')
    .option('--no-wait', 'do not wait for the controller to handle it')
    .action(async (flags: { wait: boolean }, cmd: Command) => {
      const done = await withOps(g(cmd), async (ops) => {
        await ops.requestRebalance();
        return flags.wait ? ops.rebalanceDone() : null;
      });
      process.stdout.write(done === null ? 'rebalance requested\n' : done ? 'rebalanced\n' : 'rebalance requested; no controller handled it yet\n');
      if (done === false) process.exitCode = 1;
    });

  ctl
    .command('status')
    .description('leader, members (live / grace / held), blueprints with plan generations, what each node applied')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => {
      const o = await withOps(g(cmd), (ops) => ops.overview());
      if (flags.json) {
        process.stdout.write(JSON.stringify(o, null, 2) + '\n');
        return;
      }
      const k = c();
      const lines = [`leader: ${o.leader ?? k.red('none')}${o.controller ? `  (round ${o.controller.n}: ${o.controller.reason})` : ''}`, ''];
      const states = o.controller?.members ?? {};
      lines.push(
        table([
          ['NODE', 'STATE', 'ENDPOINTS', 'APPLIED'],
          ...Object.entries(o.members).map(([id, m]) => {
            const s = states[id] ?? (m?.live ? 'live' : 'down');
            // A node's status is the node's word: printed only as plain, bounded text (no escapes, no newlines).
            const st = o.statuses[id] as { blueprints?: unknown } | null;
            const bps = st && typeof st.blueprints === 'object' && st.blueprints !== null ? (st.blueprints as Record<string, { generation?: unknown; ok?: unknown } | null>) : {};
            const applied = Object.entries(bps)
              .slice(0, 50)
              .map(([b, x]) => `${printable(b)}@${printable(x?.generation)}${x?.ok === true ? '' : '!'}`)
              .join(' ');
            return [id, s === 'live' ? k.green(s) : s === 'grace' ? k.yellow(s) : k.red(s), (m?.endpoints ?? []).join(',') || 'hidden', applied || '-'];
          }),
        ]),
        ...Object.entries(o.controller?.untrusted ?? {}).map(([id, u]) => `${k.red(`not planned: ${id} (${u.state})`)} ${u.problem.code}: ${u.problem.hint}`),
        '',
        table([
          ['BLUEPRINT', 'SUBMITTED', 'PLANNED', 'GENERATION', 'PROBLEMS'],
          ...Object.keys({ ...o.submitted, ...o.plans })
            .sort()
            .map((id) => {
              const pr = o.controller?.blueprints[id]?.problems ?? [];
              return [id, String(o.submitted[id] ?? '-'), String(o.plans[id]?.version ?? '-'), String(o.plans[id]?.generation ?? '-'), pr.length ? k.red(pr.map((p) => p.code).join(',')) : '-'];
            }),
        ]),
      );
      process.stdout.write(lines.join('\n') + '\n');
    });
}
