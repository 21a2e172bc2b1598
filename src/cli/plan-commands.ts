// `zmesh plan`: blueprint (plain or signed) + inventory (+ previous plan) → plan JSON, summary, device configs.
import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadBlueprintOrSigned } from '../blueprint/index.ts';
import { seededRandom } from '../crypto/rng.ts';
import { ZmeshError } from '../errors.ts';
import { nodePart, parseInventory, planBlueprint, summarizePlan, PLAN_FORMAT, type Plan } from '../plan/index.ts';
import { readText, writePrivateFile } from './util.ts';

interface PlanFlags {
  nodes?: string;
  previous?: string;
  out?: string;
  seed?: string;
  summary?: boolean;
  tenantKey?: string;
  accessOut?: string;
  part?: string;
  allowSameVersion?: boolean;
}

/** A node's part, or an error when the plan has no resource for that node. */
function partOf(plan: Plan, node: string) {
  const nodes = [...new Set(plan.networks.flatMap((n) => n.resources.map((r) => r.node)))].sort();
  if (!nodes.includes(node)) {
    throw new ZmeshError('E_NODE_UNKNOWN', `the plan of ${plan.tenant}/${plan.blueprint} (generation ${plan.generation}) has no part for node ${node}`, {
      path: 'node',
      hint: `one of: ${nodes.slice(0, 20).join(', ')}${nodes.length > 20 ? ', …' : ''}`,
    });
  }
  return nodePart(plan, node);
}

function readPlan(path: string): Plan {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ZmeshError('E_PLAN_FILE', `cannot read plan ${path}: ${(e as Error).message}`, { hint: 'pass a plan written by `zmesh plan`', cause: e });
  }
  if ((data as Plan)?.format !== PLAN_FORMAT) {
    throw new ZmeshError('E_PLAN_FILE', `${path} is not a zmesh plan (format ${PLAN_FORMAT})`, { hint: 'pass a plan written by `zmesh plan`' });
  }
  return data as Plan;
}

export function registerPlanCommands(program: Command): void {
  program
    .command('plan')
    .description('plan a blueprint over a node inventory: one network resource per node')
    .argument('<blueprint>', 'blueprint (YAML/JSON) or signed envelope')
    .option('--nodes <inventory>', 'node inventory (YAML/JSON), required')
    .option('--previous <plan>', 'previous plan: keep subnets, ports, keys and access nodes stable')
    .option('--out <file>', 'write the plan here (mode 0600) instead of stdout')
    .option('--seed <seed>', 'deterministic key material (tests and demos only; never for real keys)')
    .option('--tenant-key <pubkey>', 'a signed envelope must be signed by this tenant key')
    .option('--summary', 'print a human summary (to stdout with --out, else to stderr)')
    .option('--access-out <dir>', 'write each generated access-device wg-quick config to DIR/<network>-<device>.conf (0600)')
    .option('--part <node>', "print only this node's part of the new plan (for a saved plan's part: zmesh plan part PLAN NODE)")
    .option('--allow-same-version', 'with --previous: plan the same blueprint version again (agents refuse it as a replay unless only the plan changed)')
    .action((file: string, flags: PlanFlags, cmd: Command) => {
      if (!flags.nodes) cmd.error("error: required option '--nodes <inventory>' not specified", { exitCode: 2, code: 'commander.missingMandatoryOptionValue' });
      const { blueprint } = loadBlueprintOrSigned(readText(file), { tenantKey: flags.tenantKey });
      const inventory = parseInventory(readText(flags.nodes!));
      const previous = flags.previous ? readPlan(flags.previous) : undefined;
      if (previous && previous.version === blueprint.version && !flags.allowSameVersion) {
        throw new ZmeshError('E_SAME_VERSION', `${file} has version ${blueprint.version}, the same as the previous plan ${flags.previous}: agents refuse a blueprint they already run with another content as a replay`, {
          path: 'version',
          hint: 'raise the version and sign again, or pass --allow-same-version to re-plan the same blueprint (a new generation)',
        });
      }
      const random = seededRandom(flags.seed ?? randomBytes(32));
      const plan = planBlueprint(blueprint, inventory, { random, previous });
      const output = flags.part ? partOf(plan, flags.part) : plan;
      const json = JSON.stringify(output, null, 2) + '\n';
      if (flags.out) writePrivateFile(flags.out, json);
      else process.stdout.write(json);
      if (flags.accessOut) {
        for (const n of plan.networks) {
          for (const d of n.access) {
            if (d.wgQuickConfig) writePrivateFile(join(flags.accessOut, `${n.name}-${d.name}.conf`), d.wgQuickConfig);
          }
        }
      }
      if (flags.summary) (flags.out ? process.stdout : process.stderr).write(summarizePlan(plan));
    })
    .command('part')
    .description("cut one node's part out of a saved plan, at the plan's own generation (what that node receives)")
    .argument('<plan>', 'a plan written by `zmesh plan`')
    .argument('<node>', 'the node id')
    .option('--out <file>', 'write the part here (mode 0600) instead of stdout')
    .action((planFile: string, node: string, flags: { out?: string }) => {
      const json = JSON.stringify(partOf(readPlan(planFile), node), null, 2) + '\n';
      if (flags.out) writePrivateFile(flags.out, json);
      else process.stdout.write(json);
    });
}
