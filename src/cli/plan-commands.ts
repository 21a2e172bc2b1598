// `zmesh plan`: blueprint (plain or signed) + inventory (+ previous plan) → compact plan JSON (`zmesh-plan/2`),
// or its full form (`--expand`), one node's part (`--part`), a summary and a diff against the previous plan.
// `zmesh plan part PLAN NODE` / `zmesh plan expand PLAN` read a saved plan of either form. Declared here; done in
// plan-actions.ts, loaded (with the planner, the blueprint reader, yaml and @noble) when one of them runs.
import type { Command } from 'commander';
import type { OutFlags, PlanFlags } from './plan-actions.ts';

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
    .action(async (file: string, flags: PlanFlags, cmd: Command) => {
      if (!flags.nodes) cmd.error("error: required option '--nodes <inventory>' not specified", { exitCode: 2, code: 'commander.missingMandatoryOptionValue' });
      if (flags.diff && !flags.previous) cmd.error('error: --diff needs --previous <plan>', { exitCode: 2, code: 'commander.usage' });
      if (flags.part && flags.expand) cmd.error('error: --part and --expand exclude each other (a part is always full)', { exitCode: 2, code: 'commander.usage' });
      (await import('./plan-actions.ts')).plan(file, flags);
    });
  plan
    .command('part')
    .description("cut one node's part out of a saved plan, at the plan's own generation (what that node receives)")
    .argument('<plan>', 'a plan written by `zmesh plan` (either form)')
    .argument('<node>', 'the node id')
    .option('--out <file>', 'write the part here (mode 0600) instead of stdout')
    .option('--compact', 'write compact JSON even for a small part')
    .action(async (planFile: string, node: string, flags: OutFlags, cmd: Command) => {
      (await import('./plan-actions.ts')).part(planFile, node, outFlags(flags, cmd));
    });
  plan
    .command('expand')
    .description('print the full form of a saved plan (zmesh-plan/1: every resource with its peers), as plans were written before the compact form')
    .argument('<plan>', 'a plan written by `zmesh plan` (either form)')
    .option('--out <file>', 'write the full plan here (mode 0600) instead of stdout')
    .option('--compact', 'write compact JSON even for a small plan')
    .action(async (planFile: string, flags: OutFlags, cmd: Command) => {
      (await import('./plan-actions.ts')).expand(planFile, outFlags(flags, cmd));
    });
}
