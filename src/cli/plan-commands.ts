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
  nodes: string;
  previous?: string;
  out?: string;
  seed?: string;
  summary?: boolean;
  tenantKey?: string;
  accessOut?: string;
  part?: string;
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
    .requiredOption('--nodes <inventory>', 'node inventory (YAML/JSON)')
    .option('--previous <plan>', 'previous plan: keep subnets, ports, keys and access nodes stable')
    .option('--out <file>', 'write the plan here (mode 0600) instead of stdout')
    .option('--seed <seed>', 'deterministic key material (tests and demos only; never for real keys)')
    .option('--tenant-key <pubkey>', 'a signed envelope must be signed by this tenant key')
    .option('--summary', 'print a human summary (to stdout with --out, else to stderr)')
    .option('--access-out <dir>', 'write each generated access-device wg-quick config to DIR/<network>-<device>.conf (0600)')
    .option('--part <node>', "print only this node's part of the plan (what the node receives)")
    .action((file: string, flags: PlanFlags) => {
      const { blueprint } = loadBlueprintOrSigned(readText(file), { tenantKey: flags.tenantKey });
      const inventory = parseInventory(readText(flags.nodes));
      const previous = flags.previous ? readPlan(flags.previous) : undefined;
      const random = seededRandom(flags.seed ?? randomBytes(32));
      const plan = planBlueprint(blueprint, inventory, { random, previous });
      const output = flags.part ? nodePart(plan, flags.part) : plan;
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
    });
}
