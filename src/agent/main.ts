// The agent service: config → identity → state store → data-plane driver → agent loop → admin socket(s).
// SIGTERM/SIGINT stop it cleanly; the data plane keeps running (a restart reconciles from the store).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildAdminApp } from '../admin/app.ts';
import { listenUnix } from '../admin/listen.ts';
import { Key, X25519Secret, clampX25519 } from '../crypto/keys.ts';
import { ZmeshError } from '../errors.ts';
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
      writeSync(fd, clampX25519(randomBytes(32)).toString() + '\n');
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
  return new X25519Secret(Key.parse(readFileSync(file, 'utf8').trim()));
}

export interface RunningAgent {
  agent: Agent;
  config: AgentConfig;
  stop(): Promise<void>;
}

export async function runAgent(configFile: string, flags: { etcd?: string; etcdCacert?: string; etcdCert?: string; etcdKey?: string } = {}): Promise<RunningAgent> {
  process.umask(0o077);
  const config = withEtcdFlags(parseAgentConfig(readFileSync(configFile, 'utf8'), configBaseDir(configFile)), flags);
  const log = pino({ level: config.logLevel, base: { node: config.nodeId } }, pino.destination(2));
  const identity = loadIdentity(config.identityKeyFile);
  const { db, versions } = openStore(config.stateDir, AGENT_MODULES);
  const state = new State(db);
  let agent: Agent | null = null;
  // Supervision: a wireguard-go daemon that dies triggers a reconcile at once, which restarts it.
  const driver = await makeNetnsDriver(config, identity, log, () => void agent?.reconcile('daemon exited').catch(() => undefined));
  const runtime = makeRuntime(config, db);
  agent = new Agent({ config, state, identity, driver, log, moduleVersions: versions, runtime });
  const apps: FastifyInstance[] = [];
  const admin = buildAdminApp({ agent });
  await listenUnix(admin, config.adminSocket);
  apps.push(admin);
  if (config.readSocket) {
    const ro = buildAdminApp({ agent, readOnly: true });
    await listenUnix(ro, config.readSocket, { group: config.readSocketGroup ?? '0' });
    apps.push(ro);
  }
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
      log.info('agent stopped');
    })());
  return { agent: agent!, config, stop };
}
