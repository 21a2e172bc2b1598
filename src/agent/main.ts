// The agent service: config → identity → state store → data-plane driver → agent loop → admin socket(s).
// SIGTERM/SIGINT stop it cleanly; the data plane keeps running (a restart reconciles from the store).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createLogger, type Logger } from '../log.ts';
import { startAdminSockets } from '../admin/serve.ts';
import { X25519Secret, clampX25519 } from '../crypto/keys.ts';
import { ZmeshError } from '../errors.ts';
import { KeyFileError, formatKeyFile, parseSecretKeyFile } from '../crypto/keyfile.ts';
import { Agent } from './agent.ts';
import { configBaseDir, parseAgentConfig, type AgentConfig } from './config.ts';
import { withEtcdFlags } from './etcd-config.ts';
import { makeNetnsDriver } from './netns-adapter.ts';
import { State } from './state.ts';
import { AGENT_MODULES, openStore } from './store.ts';
import { makeRuntime } from './runtime-adapter.ts';
import { mkdirSync, openSync, closeSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Reads the node identity secret, generating it (0600) on first start. Refuses a group/world-readable file. */
export function loadIdentity(file: string): X25519Secret {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, formatKeyFile('node', 'secret', clampX25519(randomBytes(32))));
    } finally {
      closeSync(fd);
    }
  }
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    throw new ZmeshError('E_KEY_PERMISSIONS', `identity key ${file} is readable by others (mode ${mode.toString(8)})`, {
      hint: `chmod 600 ${file}`,
    });
  }
  try {
    return new X25519Secret(parseSecretKeyFile(readFileSync(file, 'utf8'), ['node']).key);
  } catch (e) {
    if (!(e instanceof KeyFileError)) throw e;
    throw new ZmeshError(e.code, `identity key ${file} ${e.message}`, { hint: 'the identity is a node X25519 secret key (zmesh keygen node FILE)', cause: e });
  }
}

/** Whether an error is the system running out of descriptors, processes or memory (a run-time condition, not a bug). */
export function isExhaustion(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'EMFILE' || code === 'ENFILE' || ((code === 'EAGAIN' || code === 'ENOMEM') && /^spawn/.test(String((e as { syscall?: unknown }).syscall ?? '')));
}

/**
 * The last line of defence against descriptor exhaustion: an 'error' event nobody listens to (a library's
 * stream, socket or child process that failed with EMFILE) is logged and the agent keeps running, since the
 * object that failed is gone and the rest of the state is intact; the reconcile loop retries what failed. Any
 * other uncaught error is logged and ends the process (exit 1; systemd restarts it and the store is the truth).
 * Returns the function that removes the guard.
 */
export function guardExhaustion(log: Pick<Logger, 'error' | 'fatal'>, exit: (code: number) => void = (c) => process.exit(c)): () => void {
  const onUncaught = (e: unknown, origin: string) => {
    const err = e as { code?: string; syscall?: string; message?: string; stack?: string };
    if (isExhaustion(e)) {
      log.error({ code: err.code, syscall: err.syscall, origin, err: err.message }, `out of resources (${err.code}): an error nobody handled; the agent keeps running and retries`);
      return;
    }
    log.fatal({ origin, err: err?.message ?? String(e), stack: err?.stack }, 'uncaught error; exiting');
    exit(1);
  };
  process.on('uncaughtException', onUncaught);
  return () => process.off('uncaughtException', onUncaught);
}

export interface RunningAgent {
  agent: Agent;
  config: AgentConfig;
  stop(): Promise<void>;
}

export async function runAgent(configFile: string, flags: { etcd?: string; etcdCacert?: string; etcdCert?: string; etcdKey?: string } = {}): Promise<RunningAgent> {
  process.umask(0o077);
  const config = withEtcdFlags(parseAgentConfig(readFileSync(configFile, 'utf8'), configBaseDir(configFile)), flags);
  const log = createLogger({ level: config.logLevel, base: { node: config.nodeId } });
  const identity = loadIdentity(config.identityKeyFile);
  const { db, versions, backup, steps } = openStore(config.stateDir, AGENT_MODULES);
  if (backup) log.warn({ steps, backup, versions }, `state store migrated (${steps!.join(', ')}); the store as it was is kept in ${backup} for a rollback`);
  const state = new State(db);
  let agent: Agent | null = null;
  // Supervision: a wireguard-go daemon that dies triggers a reconcile at once, which restarts it.
  const driver = await makeNetnsDriver(config, identity, log, () => void agent?.reconcile('daemon exited').catch(() => undefined));
  // The runtime's commands go through the driver's runner, so a reconcile's cost counts them too.
  const runtime = makeRuntime(config, db, driver.runner);
  agent = new Agent({ config, state, identity, driver, log, moduleVersions: versions, runtime });
  const unguard = guardExhaustion(log);
  // Root socket and read-only group socket, each with a budget of its own (docs/admin-api.md#limits).
  const { apps } = await startAdminSockets({ agent, adminSocket: config.adminSocket, readSocket: config.readSocket, readSocketGroup: config.readSocketGroup, log });
  log.info({ socket: config.adminSocket, identity: identity.publicKey.toString() }, 'agent listening');
  agent.start();
  // Distributed control plane (docs/control-plane.md): register, watch this node's parts, report status.
  // etcd3 (grpc, protobufjs: ~25 MiB resident) is only loaded by agents that use it.
  const link = config.etcd ? (await import('./etcd-link.ts')).startEtcdLink({ agent, state, config, identity, log }) : null;
  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      for (const a of apps) await a.close().catch(() => undefined);
      // The registration is left to expire with its lease: a quick restart is not a membership change.
      await link?.stop({ revoke: false });
      await agent.stop();
      db.close();
      unguard();
      log.info('agent stopped');
    })());
  return { agent: agent!, config, stop };
}
