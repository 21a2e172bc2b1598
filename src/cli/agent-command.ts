// `zmesh agent --config FILE`: runs the node agent in the foreground (systemd: zmesh-agent.service).
import type { Command } from 'commander';

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the node agent (foreground)')
    .requiredOption('--config <file>', 'agent config (YAML), see examples/agent.yaml')
    .action(async (flags: { config: string }) => {
      const { runAgent } = await import('../agent/main.ts');
      const running = await runAgent(flags.config);
      await new Promise<void>((resolve) => {
        const onSignal = (sig: string) => {
          process.stderr.write(`zmesh agent: ${sig}, stopping\n`);
          running.stop().then(resolve, resolve);
        };
        process.once('SIGTERM', () => onSignal('SIGTERM'));
        process.once('SIGINT', () => onSignal('SIGINT'));
      });
    });
}
