#!/usr/bin/env node
/**
 * src/cli — the `zmesh` command.
 *
 * Does: parse arguments, read and write files, print human tables or JSON, map errors to exit codes
 * (0 ok, 1 failure, 2 invalid input / verification failed).
 * Does not: hold logic of its own; it calls src/blueprint, src/plan, the agent and the admin socket.
 */
import { Command } from 'commander';
import { registerBlueprintCommands } from './blueprint-commands.ts';
import { registerPlanCommands } from './plan-commands.ts';
import { registerOpsCommands } from './ops-commands.ts';
import { registerAgentCommand } from './agent-command.ts';
import { runMain } from './util.ts';

const program = new Command();
program
  .name('zmesh')
  .description('WireGuard overlay networks for multi-tenant edge nodes')
  .version('0.1.0')
  .option('--socket <path>', 'admin socket of the agent (default $ZMESH_SOCKET or /run/zmesh/admin.sock)');
registerBlueprintCommands(program);
registerPlanCommands(program);
registerOpsCommands(program);
registerAgentCommand(program);
(await import('./lab-commands.ts')).registerLabCommands(program);
(await import('./control-commands.ts')).registerControlCommands(program);
(await import('./runtime-commands.ts')).registerRuntimeCommands(program);

await runMain(program, process.argv);
