// What `zmesh plan`, `plan part` and `plan expand` do (declared in plan-commands.ts; this module, the planner
// and the blueprint reader load only when one of them runs). Output is written in pieces (src/plan/json-out.ts):
// pretty for small documents, compact for large ones (docs/plan-format.md).
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
import { loadBlueprintFile } from './blueprint-actions.ts';
import { readInventoryFile } from './documents.ts';

export interface PlanFlags {
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

/**
 * Writes a JSON document to `out` (mode 0600, via a temporary file: never half a plan) or stdout. The full form
 * (zmesh-plan/1, which grows with n²) is written in pieces; a compact plan or a part (which grow with n: 4.5 MiB
 * and 1.8 MiB at 10,000 nodes) is one JSON.stringify, the same text at a fraction of the generator's cost.
 */
export function writeJson(doc: AnyPlan | NodePlanPart, out: string | undefined, compact = false): void {
  const indent = compact || itemCount(doc) > PRETTY_MAX_ITEMS ? 0 : 2;
  const pieces =
    doc.format === PLAN_FORMAT
      ? batched((function* () {
          yield* jsonChunks(doc, indent);
          yield '\n';
        })())
      : [`${JSON.stringify(doc, null, indent)}\n`];
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

export interface OutFlags {
  out?: string;
  compact?: boolean;
}

/** `zmesh plan BLUEPRINT --nodes INVENTORY …` (the usage checks done: --nodes given, the flags agree). */
export function plan(file: string, flags: PlanFlags): void {
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
}

/** `zmesh plan part PLAN NODE`. */
export function part(planFile: string, node: string, o: OutFlags): void {
  writeJson(partOf(readPlan(planFile), node), o.out, o.compact);
}

/** `zmesh plan expand PLAN`. */
export function expand(planFile: string, o: OutFlags): void {
  writeJson(expandPlan(readPlan(planFile)) as Plan, o.out, o.compact);
}
