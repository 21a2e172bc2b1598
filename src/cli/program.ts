// The `zmesh` command tree (built apart from main.ts so that tests can walk every subcommand).
import { Command } from 'commander';
import { registerBlueprintCommands } from './blueprint-commands.ts';
import { registerPlanCommands } from './plan-commands.ts';
import { registerOpsCommands } from './ops-commands.ts';
import { registerAgentCommand } from './agent-command.ts';
import { registerMetaCommands, zmeshVersion } from './meta-commands.ts';
import { setRunningCommand } from './util.ts';

export async function buildProgram(): Promise<Command> {
  const program = new Command();
  program
    .name('zmesh')
    .description('WireGuard overlay networks for multi-tenant edge nodes')
    .version(zmeshVersion())
    .option('--socket <path>', 'admin socket of the agent (default $ZMESH_SOCKET or /run/zmesh/admin.sock)')
    .option('--no-color', 'no colours in the output (as when NO_COLOR is set)')
    .hook('preAction', (_root, action) => {
      setRunningCommand(action);
      if (program.opts().color === false) process.env.NO_COLOR = '1';
    });
  registerBlueprintCommands(program);
  registerPlanCommands(program);
  registerOpsCommands(program);
  registerAgentCommand(program);
  (await import('./lab-commands.ts')).registerLabCommands(program);
  (await import('./control-commands.ts')).registerControlCommands(program);
  (await import('./runtime-commands.ts')).registerRuntimeCommands(program);
  registerMetaCommands(program);
  return program;
}
