// The `zmesh` command tree (built apart from main.ts so that tests can walk every subcommand).
import { Command } from 'commander';
import { registerBlueprintCommands } from './blueprint-commands.ts';
import { registerPlanCommands } from './plan-commands.ts';
import { registerOpsCommands } from './ops-commands.ts';
import { registerAgentCommand } from './agent-command.ts';

export async function buildProgram(): Promise<Command> {
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
  return program;
}
