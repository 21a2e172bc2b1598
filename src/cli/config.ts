// The operator's CLI config file (docs/cli-config.md): defaults for the admin socket, the etcd endpoints and TLS
// files, the list output format and colour. Found at $ZMESH_CONFIG (which must exist), else
// ${XDG_CONFIG_HOME:-~/.config}/zmesh/config.yaml, else /etc/zmesh/cli.yaml. Every setting resolves as
// flag > environment > config file > built-in default, and remembers where it came from (`zmesh config show`).
//
//   socket: /run/zmesh/admin.sock
//   etcd:
//     endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]
//     cacert: etcd-ca.pem          # relative paths: against this file's directory
//     cert: root.pem
//     key: root-key.pem
//   output: wide                   # table | wide | json | yaml: the default of -o on list commands
//   color: false                   # false: never; true (default): on a terminal, unless NO_COLOR or --no-color
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { unknownField, ValidationError, ZmeshError, type Problem } from '../errors.ts';
import { parseYamlDocument } from '../yaml.ts';
import { inFile } from './util.ts';

export const DEFAULT_SOCKET = '/run/zmesh/admin.sock';
export const SYSTEM_CONFIG = '/etc/zmesh/cli.yaml';
export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type ConfigOutput = (typeof OUTPUT_FORMATS)[number];

// Error codes (registered in src/codes.ts): E_CLI_CONFIG_MISSING, E_CLI_CONFIG_UNSAFE, E_CLI_CONFIG_ENV; and the
// shared E_UNKNOWN_FIELD, E_TYPE, E_YAML_SYNTAX, E_FILE.

export interface CliConfig {
  socket?: string;
  etcd?: { endpoints?: string[]; cacert?: string; cert?: string; key?: string };
  output?: ConfigOutput;
  color?: boolean;
}

export interface LoadedConfig {
  /** The file read, or null when there is none. */
  file: string | null;
  config: CliConfig;
  /** Things worth saying on stderr (a group-writable file). */
  warnings: string[];
}

type Env = Record<string, string | undefined>;

const FIELDS = ['socket', 'etcd', 'output', 'color'] as const;
const ETCD_FIELDS = ['endpoints', 'cacert', 'cert', 'key'] as const;
const URL = /^https?:\/\/[^/\s]+\/?$/;
const DOCS = 'docs/cli-config.md';
/** A CLI config is a few lines: a bigger file is refused unread. */
export const MAX_CONFIG_BYTES = 1 << 20;

/** Checks a config document strictly; relative paths resolve against `baseDir` (the file's directory). */
export function parseCliConfig(raw: unknown, baseDir: string): CliConfig {
  if (raw === null || raw === undefined) return {};
  const problems: Problem[] = [];
  const bad = (path: string, message: string, hint: string, code = 'E_TYPE') => problems.push({ code, path, message, hint });
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ValidationError([{ code: 'E_TYPE', path: '', message: 'the CLI config is a YAML mapping', hint: `see ${DOCS}` }], 'CLI config');
  }
  const c = raw as Record<string, unknown>;
  for (const k of Object.keys(c)) if (!(FIELDS as readonly string[]).includes(k)) problems.push(unknownField(k, k, FIELDS, DOCS));
  const out: CliConfig = {};
  const file = (path: string, v: unknown): string | undefined => {
    if (typeof v !== 'string' || !v || v.includes('\0')) {
      bad(path, `${path} is a file path`, 'write an absolute path, or one relative to this file');
      return undefined;
    }
    return isAbsolute(v) ? v : resolve(baseDir, v);
  };
  if (c.socket !== undefined) out.socket = file('socket', c.socket);
  if (c.etcd !== undefined) {
    const e = c.etcd;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) bad('etcd', 'etcd is a mapping', 'write etcd: {endpoints: [https://10.0.0.1:2379], cacert: ca.pem}');
    else {
      const m = e as Record<string, unknown>;
      for (const k of Object.keys(m)) if (!(ETCD_FIELDS as readonly string[]).includes(k)) problems.push(unknownField(`etcd.${k}`, k, ETCD_FIELDS, DOCS));
      const etcd: NonNullable<CliConfig['etcd']> = {};
      if (m.endpoints !== undefined) {
        const list = typeof m.endpoints === 'string' ? m.endpoints.split(',').map((s) => s.trim()).filter(Boolean) : m.endpoints;
        if (!Array.isArray(list) || list.length === 0 || list.some((u) => typeof u !== 'string' || !URL.test(u))) {
          bad('etcd.endpoints', 'endpoints is a list of etcd client URLs', 'write [https://10.0.0.1:2379, …]');
        } else etcd.endpoints = list as string[];
      }
      for (const k of ['cacert', 'cert', 'key'] as const) if (m[k] !== undefined) etcd[k] = file(`etcd.${k}`, m[k]);
      out.etcd = etcd;
    }
  }
  if (c.output !== undefined) {
    if (!(OUTPUT_FORMATS as readonly unknown[]).includes(c.output)) bad('output', `output is one of ${OUTPUT_FORMATS.join(', ')}`, 'e.g. output: wide');
    else out.output = c.output as ConfigOutput;
  }
  if (c.color !== undefined) {
    if (typeof c.color !== 'boolean') bad('color', 'color is true or false', 'color: false turns colours off');
    else out.color = c.color;
  }
  if (problems.length) throw new ValidationError(problems, 'CLI config');
  return out;
}

/** Which file would be read: $ZMESH_CONFIG, the user's, the system's; null when none exists. */
export function configFile(env: Env = process.env, systemFile = SYSTEM_CONFIG): { path: string; explicit: boolean } | null {
  if (env.ZMESH_CONFIG) return { path: resolve(env.ZMESH_CONFIG), explicit: true };
  const xdg = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  for (const path of [join(xdg, 'zmesh', 'config.yaml'), systemFile]) {
    try {
      statSync(path);
      return { path, explicit: false };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return { path, explicit: false }; // exists but cannot be read: say so when reading
    }
  }
  return null;
}

/** Reads and checks the config file (none: an empty config). Throws a ZmeshError naming the file. */
export function loadCliConfig(env: Env = process.env, systemFile = SYSTEM_CONFIG): LoadedConfig {
  const found = configFile(env, systemFile);
  if (!found) return { file: null, config: {}, warnings: [] };
  const { path } = found;
  const refuse = (code: string, message: string, hint: string, cause?: unknown): never => {
    const err = new ZmeshError(code, message, { hint, cause });
    err.file = path;
    throw err;
  };
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') refuse('E_CLI_CONFIG_MISSING', 'does not exist ($ZMESH_CONFIG names it)', 'fix $ZMESH_CONFIG, or unset it; ZMESH_CONFIG=/dev/null reads no file', e);
    refuse('E_FILE', `cannot be read: ${(e as Error).message}`, 'run as a user who may read it, or fix its mode', e);
  }
  if (path === '/dev/null') return { file: path, config: {}, warnings: [] };
  if (!st!.isFile()) refuse('E_CLI_CONFIG_MISSING', 'is not a regular file', 'name a YAML file');
  // Checked and read through one descriptor (a file swapped after the checks is not read), opened without
  // blocking (a FIFO put in its place cannot hang zmesh) and read up to a bound.
  let fd = -1;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    refuse('E_FILE', `cannot be read: ${(e as Error).message}`, 'run as a user who may read it, or fix its mode', e);
  }
  let text = '';
  const warnings: string[] = [];
  try {
    st = fstatSync(fd);
    if (!st.isFile()) refuse('E_CLI_CONFIG_MISSING', 'is not a regular file', 'name a YAML file');
    const uid = process.getuid?.();
    if (st.mode & 0o002) refuse('E_CLI_CONFIG_UNSAFE', 'is writable by every user: refused (anyone could point zmesh at their own socket or etcd)', `chmod o-w ${path}`);
    if (uid !== undefined && st.uid !== 0 && st.uid !== uid) refuse('E_CLI_CONFIG_UNSAFE', `is owned by uid ${st.uid}, neither root nor you (uid ${uid}): refused`, `chown it to yourself or root, or set ZMESH_CONFIG`);
    if (st.mode & 0o020) warnings.push(`${path}: group-writable; every member of its group can change where zmesh connects (chmod g-w ${path})`);
    if (uid !== undefined) checkDirectories(path, uid, refuse, warnings);
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    try {
      for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    } catch (e) {
      refuse('E_FILE', `cannot be read: ${(e as Error).message}`, 'run as a user who may read it, or fix its mode', e);
    }
    if (n > MAX_CONFIG_BYTES) refuse('E_FILE', `is larger than ${MAX_CONFIG_BYTES} bytes: refused unread`, 'a CLI config is a few lines; name the right file');
    text = buf.toString('utf8', 0, n);
  } finally {
    closeSync(fd);
  }
  const config = inFile(path, () => parseCliConfig(parseYamlDocument(text, 'CLI config'), dirname(path)));
  return { file: path, config, warnings };
}

/**
 * Like ssh's StrictModes: whoever may replace the file decides where zmesh connects, so every directory above it
 * (as named, and as its symlinks resolve) belongs to root or to the user running zmesh, and only a sticky
 * directory (/tmp) may be writable by every user. A group-writable directory is a warning, as a group-writable
 * file is. Without this root, run with another user's HOME (sudo keeps it in some setups), would read a file that
 * user can swap, or a root-owned file symlinked from that user's directory with relative paths resolved there.
 */
function checkDirectories(path: string, uid: number, refuse: (code: string, message: string, hint: string) => never, warnings: string[]): void {
  let real = path;
  try {
    real = realpathSync(path);
  } catch {
    // checked as named only
  }
  const dirs = new Set<string>();
  for (const p of new Set([resolve(path), real])) {
    for (let d = dirname(p); ; d = dirname(d)) {
      dirs.add(d);
      if (dirname(d) === d) break;
    }
  }
  for (const d of dirs) {
    let st: Stats;
    try {
      st = statSync(d);
    } catch {
      continue; // not there (any more): the open or the read says so
    }
    const sticky = (st.mode & 0o1000) !== 0;
    if (st.uid !== 0 && st.uid !== uid) refuse('E_CLI_CONFIG_UNSAFE', `lies in ${d}, owned by uid ${st.uid}, neither root nor you (uid ${uid}): refused (its owner could replace the file)`, 'keep the config in a directory of yours or root\'s, or set ZMESH_CONFIG');
    if (st.mode & 0o002 && !sticky) refuse('E_CLI_CONFIG_UNSAFE', `lies in ${d}, writable by every user: refused (anyone could replace the file)`, `chmod o-w ${d}`);
    if (st.mode & 0o020 && !sticky) warnings.push(`${d}: group-writable; every member of its group can replace ${path} (chmod g-w ${d})`);
  }
}

// ---- resolution: flag > environment > config file > built-in default ----------------------------------------

export type Source = 'flag' | 'env' | 'file' | 'default';

export interface Setting<T> {
  value: T;
  source: Source;
  /** The flag (`--socket`), the variable (`ZMESH_SOCKET`), the file's path, or `built-in`. */
  from: string;
}

export interface CliFlags {
  socket?: string;
  etcd?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  /** `-o`; `json: true` (`--json`) counts as `-o json`. */
  output?: string;
  json?: boolean;
  /** commander's `--no-color`: false when given. */
  color?: boolean;
}

export interface Settings {
  file: string | null;
  socket: Setting<string>;
  etcdEndpoints: Setting<string[] | null>;
  etcdCacert: Setting<string | null>;
  etcdCert: Setting<string | null>;
  etcdKey: Setting<string | null>;
  output: Setting<ConfigOutput>;
  color: Setting<boolean>;
}

function pick<T>(
  flag: [string, T | undefined],
  env: [string, T | undefined],
  file: [string | null, T | undefined],
  fallback: T,
): Setting<T> {
  if (flag[1] !== undefined) return { value: flag[1], source: 'flag', from: flag[0] };
  if (env[1] !== undefined) return { value: env[1], source: 'env', from: env[0] };
  if (file[1] !== undefined && file[0] !== null) return { value: file[1], source: 'file', from: file[0] };
  return { value: fallback, source: 'default', from: 'built-in' };
}

const nonEmpty = (v: string | undefined) => (v ? v : undefined);
const urls = (v: string | undefined) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);

function envOutput(env: Env): ConfigOutput | undefined {
  const v = env.ZMESH_OUTPUT;
  if (!v) return undefined;
  if (!(OUTPUT_FORMATS as readonly string[]).includes(v)) {
    throw new ZmeshError('E_CLI_CONFIG_ENV', `ZMESH_OUTPUT=${JSON.stringify(v.slice(0, 32))} is not one of ${OUTPUT_FORMATS.join(', ')}`, { path: 'ZMESH_OUTPUT', hint: 'fix or unset ZMESH_OUTPUT' });
  }
  return v as ConfigOutput;
}

/** Every setting and where it came from (pure: flags, environment and the loaded file are given). */
export function resolveSettings(flags: CliFlags, env: Env, loaded: LoadedConfig): Settings {
  const f = loaded.file;
  const c = loaded.config;
  const flagOutput = flags.json ? 'json' : (flags.output as ConfigOutput | undefined);
  return {
    file: f,
    socket: pick(['--socket', flags.socket], ['ZMESH_SOCKET', nonEmpty(env.ZMESH_SOCKET)], [f, c.socket], DEFAULT_SOCKET),
    etcdEndpoints: pick<string[] | null>(['--etcd', urls(flags.etcd)], ['ZMESH_ETCD', urls(env.ZMESH_ETCD)], [f, c.etcd?.endpoints], null),
    etcdCacert: pick<string | null>(['--cacert', flags.cacert], ['ZMESH_ETCD_CACERT', nonEmpty(env.ZMESH_ETCD_CACERT)], [f, c.etcd?.cacert], null),
    etcdCert: pick<string | null>(['--cert', flags.cert], ['ZMESH_ETCD_CERT', nonEmpty(env.ZMESH_ETCD_CERT)], [f, c.etcd?.cert], null),
    etcdKey: pick<string | null>(['--key', flags.key], ['ZMESH_ETCD_KEY', nonEmpty(env.ZMESH_ETCD_KEY)], [f, c.etcd?.key], null),
    output: pick<ConfigOutput>([flags.json ? '--json' : '-o', flagOutput], ['ZMESH_OUTPUT', envOutput(env)], [f, c.output], 'table'),
    color: pick<boolean>(['--no-color', flags.color === false ? false : undefined], ['NO_COLOR', env.NO_COLOR ? false : undefined], [f, c.color], true),
  };
}

const warned = new Set<string>();

/** Loads the config (printing its warnings once per process) and resolves every setting for these flags. */
export function cliSettings(flags: CliFlags, env: Env = process.env): Settings {
  const loaded = loadCliConfig(env);
  for (const w of loaded.warnings) {
    if (!warned.has(w)) process.stderr.write(`zmesh: warning: ${w}\n`);
    warned.add(w);
  }
  return resolveSettings(flags, env, loaded);
}

/** The admin socket: --socket, $ZMESH_SOCKET, the config's socket, /run/zmesh/admin.sock. */
export function resolveSocket(flag?: string): string {
  // Flag and environment first: a broken config file does not stop a command told where to connect.
  if (flag !== undefined) return flag;
  if (process.env.ZMESH_SOCKET) return process.env.ZMESH_SOCKET;
  return cliSettings({}).socket.value;
}

/** etcd URLs and TLS files for `zmesh controller …`, each from its flag, variable, the config file or nowhere. */
export function resolveEtcd(flags: Pick<CliFlags, 'etcd' | 'cacert' | 'cert' | 'key'>): { urls: string[] | null; cacert?: string; cert?: string; key?: string } {
  const s = cliSettings(flags);
  return { urls: s.etcdEndpoints.value, cacert: s.etcdCacert.value ?? undefined, cert: s.etcdCert.value ?? undefined, key: s.etcdKey.value ?? undefined };
}

/** The default of `-o` when neither -o nor --json is given: $ZMESH_OUTPUT, the config's output, table. */
export function defaultOutput(): ConfigOutput {
  return cliSettings({}).output.value;
}

/**
 * Colour off from the config file (`color: false`): sets NO_COLOR for this process, as --no-color does, so every
 * command's colour check sees it. Colour is cosmetic: a config file that cannot be read is left to the commands
 * that need its other settings (and to `zmesh config show`), not reported here.
 */
let colourOffByFile: Setting<boolean> | null = null;
export function applyColourSetting(flagColor: boolean | undefined, env: Env = process.env): void {
  if (colourOffByFile && env.NO_COLOR === '1') delete env.NO_COLOR; // our own, from an earlier command in this process
  colourOffByFile = null;
  if (flagColor === false || env.NO_COLOR) return;
  let loaded: LoadedConfig;
  try {
    loaded = loadCliConfig(env);
  } catch {
    return;
  }
  if (loaded.config.color === false) {
    env.NO_COLOR = '1';
    colourOffByFile = { value: false, source: 'file', from: loaded.file! };
  }
}

/** The colour setting as `zmesh config show` reports it (NO_COLOR set by applyColourSetting is the file's). */
export function colourSetting(s: Settings): Setting<boolean> {
  return colourOffByFile && s.color.source === 'env' ? colourOffByFile : s.color;
}
