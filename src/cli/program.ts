// The `zmesh` command tree (built apart from main.ts so that tests can walk every subcommand). The register*
// modules only declare commands (names, operands, options, help): each action imports its implementation when it
// runs, so `--help`, `--version` and `completion` load commander and little else (test/unit/cli-start.test.ts
// lists what may be loaded; docs/benchmarks.md has the figures). Keep them so: no value import of a package or of
// the blueprint, plan, agent, control or netns code here or in a *-commands.ts module.
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
    .option('--socket <path>', 'admin socket of the agent (default $ZMESH_SOCKET, the CLI config, /run/zmesh/admin.sock)')
    .option('--no-color', 'no colours in the output (as when NO_COLOR is set)')
    .hook('preAction', async (_root, action) => {
      setRunningCommand(action);
      if (program.opts().color === false) process.env.NO_COLOR = '1';
      else (await import('./config.ts')).applyColourSetting(program.opts().color); // `color: false` in the CLI config
    });
  registerBlueprintCommands(program);
  registerPlanCommands(program);
  registerOpsCommands(program);
  registerAgentCommand(program);
  (await import('./lab-commands.ts')).registerLabCommands(program);
  (await import('./control-commands.ts')).registerControlCommands(program);
  (await import('./runtime-commands.ts')).registerRuntimeCommands(program);
  (await import('./config-commands.ts')).registerConfigCommands(program);
  registerMetaCommands(program);
  (await import('./examples.ts')).attachExamples(program);
  return program;
}
