// `zmesh plan`: blueprint (plain or signed) + inventory (+ previous plan) → compact plan JSON (`zmesh-plan/2`),
// or its full form (`--expand`), one node's part (`--part`), a summary and a diff against the previous plan.
// `zmesh plan part PLAN NODE` / `zmesh plan expand PLAN` read a saved plan of either form. Output is written in
// pieces (src/plan/json-out.ts): pretty for small documents, compact for large ones (docs/plan-format.md).
import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { seededRandom } from '../crypto/rng.ts';
import { ZmeshError } from '../errors.ts';
import { formatEndpoint } from '../../topology/cidr.ts';
import {
  batched,
  COMPACT_PLAN_FORMAT,
  compactPlan,
  diffPlans,
  expandPlan,
  formatDiff,
  jsonChunks,
  nodePart,
  planCompact,
  planNodes,
  PLAN_FORMAT,
  PRETTY_MAX_ITEMS,
  summarizePlan,
  type AnyPlan,
  type Inventory,
  type NodePlanPart,
  type Plan,
} from '../plan/index.ts';
import { readText, writeSecretFile } from './util.ts';
import { loadBlueprintFile } from './blueprint-commands.ts';
import { readInventoryFile } from './documents.ts';

interface PlanFlags {
  nodes?: string;
  previous?: string;
  out?: string;
  seed?: string;
  summary?: boolean;
  tenantKey?: string;
  accessOut?: string;
  part?: string;
  expand?: boolean;
  diff?: boolean;
  compact?: boolean;
  allowSameVersion?: boolean;
}

/** A node's part, or E_NODE_UNKNOWN when the plan has no resource for that node. */
export function partOf(plan: AnyPlan, node: string): NodePlanPart {
  const nodes = planNodes(plan);
  if (!nodes.includes(node)) {
    throw new ZmeshError('E_NODE_UNKNOWN', `the plan of ${plan.tenant}/${plan.blueprint} (generation ${plan.generation}) has no part for node ${node}`, {
      path: 'node',
      hint: `one of: ${nodes.slice(0, 20).join(', ')}${nodes.length > 20 ? ', …' : ''}`,
    });
  }
  return nodePart(plan, node);
}

/** A saved plan of either form (`zmesh-plan/2`, or `zmesh-plan/1` as written before the compact form). */
export function readPlan(path: string): AnyPlan {
  const want = 'a plan written by `zmesh plan`';
  const text = readText(path, want);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ZmeshError('E_PLAN_FILE', `cannot read plan ${path}: ${(e as Error).message}`, { hint: 'pass a plan written by `zmesh plan`', cause: e });
  }
  const format = (data as { format?: unknown } | null)?.format;
  if (format !== PLAN_FORMAT && format !== COMPACT_PLAN_FORMAT) {
    throw new ZmeshError('E_PLAN_FILE', `${path} is not a zmesh plan (format ${COMPACT_PLAN_FORMAT} or ${PLAN_FORMAT})`, { hint: 'pass a plan written by `zmesh plan`' });
  }
  return data as AnyPlan;
}

/** How many items a document holds (members, peer entries): small ones are written pretty. */
function itemCount(doc: AnyPlan | NodePlanPart): number {
  if (doc.format === 'zmesh-node-plan/1') return doc.networks.reduce((s, n) => s + n.resource.peers.length + n.subnets.length, 0);
  let items = doc.workloads.length;
  for (const n of doc.networks) items += n.resources.length + n.access.length;
  if (doc.format === PLAN_FORMAT) for (const n of doc.networks) for (const r of n.resources) items += r.peers.length;
  return items;
}

/** Writes a JSON document in pieces to `out` (mode 0600, via a temporary file: never half a plan) or stdout. */
export function writeJson(doc: AnyPlan | NodePlanPart, out: string | undefined, compact = false): void {
  const indent = compact || itemCount(doc) > PRETTY_MAX_ITEMS ? 0 : 2;
  const pieces = batched((function* () {
    yield* jsonChunks(doc, indent);
    yield '\n';
  })());
  if (!out) {
    for (const p of pieces) process.stdout.write(p);
    return;
  }
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600);
    for (const p of pieces) writeSync(fd, p);
    closeSync(fd);
    renameSync(tmp, out);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      // closed already
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}


/** The previous plan in compact form (an old full plan's endpoints come from its peers or the inventory). */
function previousCompact(prev: AnyPlan, inventory: Inventory) {
  const eps = new Map(inventory.nodes.map((n) => [n.id, n.endpoints[0]]));
  return compactPlan(prev, (node, port) => (eps.get(node) ? formatEndpoint(eps.get(node)!, port) : null));
}

interface OutFlags {
  out?: string;
  compact?: boolean;
}

/** A subcommand's --out / --compact: commander gives them to `plan` (the parent) when they follow the operands. */
function outFlags(flags: OutFlags, cmd: Command): OutFlags {
  const parent = (cmd.parent?.opts() ?? {}) as OutFlags;
  return { out: flags.out ?? parent.out, compact: flags.compact ?? parent.compact };
}

export function registerPlanCommands(program: Command): void {
  const plan = program
    .command('plan')
    .description('plan a blueprint over a node inventory: one network resource per node (a compact plan, zmesh-plan/2)')
    .argument('<blueprint>', 'blueprint (YAML/JSON) or signed envelope')
    .option('--nodes <inventory>', 'node inventory (YAML/JSON), required')
    .option('--previous <plan>', 'previous plan (either form): keep subnets, ports, keys and access nodes stable')
    .option('--out <file>', 'write the plan here (mode 0600) instead of stdout')
    .option('--seed <seed>', 'deterministic key material (tests and demos only; never for real keys)')
    .option('--tenant-key <pubkey>', 'a signed envelope must be signed by this tenant key')
    .option('--summary', 'print a human summary (to stdout with --out, else to stderr)')
    .option('--diff', 'with --previous: print what changes per node, terraform-style (to stdout with --out, else to stderr)')
    .option('--expand', 'write the full form (zmesh-plan/1: every resource with its peers) instead of the compact plan')
    .option('--compact', 'write compact JSON even for a small document (default: pretty up to 1,000 items)')
    .option('--access-out <dir>', 'write each generated access-device wg-quick config to DIR/<network>-<device>.conf (0600)')
    .option('--part <node>', "print only this node's part of the new plan (for a saved plan's part: zmesh plan part PLAN NODE)")
    .option('--allow-same-version', 'with --previous: plan the same blueprint version again (agents refuse it as a replay unless only the plan changed)')
    .action((file: string, flags: PlanFlags, cmd: Command) => {
      if (!flags.nodes) cmd.error("error: required option '--nodes <inventory>' not specified", { exitCode: 2, code: 'commander.missingMandatoryOptionValue' });
      if (flags.diff && !flags.previous) cmd.error('error: --diff needs --previous <plan>', { exitCode: 2, code: 'commander.usage' });
      if (flags.part && flags.expand) cmd.error('error: --part and --expand exclude each other (a part is always full)', { exitCode: 2, code: 'commander.usage' });
      const { blueprint } = loadBlueprintFile(file, { tenantKey: flags.tenantKey });
      const inventory = readInventoryFile(flags.nodes!);
      const previous = flags.previous ? readPlan(flags.previous) : undefined;
      if (previous && previous.version === blueprint.version && !flags.allowSameVersion) {
        throw new ZmeshError('E_SAME_VERSION', `${file} has version ${blueprint.version}, the same as the previous plan ${flags.previous}: agents refuse a blueprint they already run with another content as a replay`, {
          path: 'version',
          hint: 'raise the version and sign again, or pass --allow-same-version to re-plan the same blueprint (a new generation)',
        });
      }
      const random = seededRandom(flags.seed ?? randomBytes(32));
      const compact = planCompact(blueprint, inventory, { random, previous });
      if (flags.part) writeJson(partOf(compact, flags.part), flags.out, flags.compact);
      else writeJson(flags.expand ? expandPlan(compact) : compact, flags.out, flags.compact);
      if (flags.accessOut) {
        for (const n of compact.networks) {
          for (const d of n.access) {
            if (d.wgQuickConfig) writeSecretFile(join(flags.accessOut, `${n.name}-${d.name}.conf`), d.wgQuickConfig, { overwrite: true });
          }
        }
      }
      const human = flags.out ? process.stdout : process.stderr;
      if (flags.summary) human.write(summarizePlan(compact));
      if (flags.diff && previous) human.write(formatDiff(diffPlans(previousCompact(previous, inventory), compact)));
    });
  plan
    .command('part')
    .description("cut one node's part out of a saved plan, at the plan's own generation (what that node receives)")
    .argument('<plan>', 'a plan written by `zmesh plan` (either form)')
    .argument('<node>', 'the node id')
    .option('--out <file>', 'write the part here (mode 0600) instead of stdout')
    .option('--compact', 'write compact JSON even for a small part')
    .action((planFile: string, node: string, flags: OutFlags, cmd: Command) => {
      const o = outFlags(flags, cmd);
      writeJson(partOf(readPlan(planFile), node), o.out, o.compact);
    });
  plan
    .command('expand')
    .description('print the full form of a saved plan (zmesh-plan/1: every resource with its peers), as plans were written before the compact form')
    .argument('<plan>', 'a plan written by `zmesh plan` (either form)')
    .option('--out <file>', 'write the full plan here (mode 0600) instead of stdout')
    .option('--compact', 'write compact JSON even for a small plan')
    .action((planFile: string, flags: OutFlags, cmd: Command) => {
      const o = outFlags(flags, cmd);
      writeJson(expandPlan(readPlan(planFile)) as Plan, o.out, o.compact);
    });
}
