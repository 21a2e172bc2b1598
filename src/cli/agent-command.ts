// `zmesh agent --config FILE [--etcd URLS]`: runs the node agent in the foreground (systemd: zmesh-agent.service).
import type { Command } from 'commander';

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the node agent (foreground)')
    .requiredOption('--config <file>', 'agent config (YAML), see examples/agent.yaml')
    .option('--etcd <urls>', 'distributed control plane: etcd client URLs, comma-separated (over the config etcd section)')
    .option('--etcd-cacert <file>', 'CA of the etcd servers (https URLs)')
    .option('--etcd-cert <file>', 'client certificate for etcd')
    .option('--etcd-key <file>', 'client key for etcd')
    .action(async (flags: { config: string; etcd?: string; etcdCacert?: string; etcdCert?: string; etcdKey?: string }) => {
      const { runAgent } = await import('../agent/main.ts');
      const running = await runAgent(flags.config, flags);
      await new Promise<void>((resolve) => {
        let stopping = false;
        const onSignal = (sig: string) => {
          if (stopping) return void process.stderr.write(`zmesh agent: ${sig} again, still stopping\n`);
          stopping = true;
          process.stderr.write(`zmesh agent: ${sig}, stopping\n`);
          running.stop().then(resolve, resolve);
        };
        // `on`, not `once`: while a command runs, execa's exit handler (signal-exit) re-raises any signal that no
        // other listener takes, which ended the agent in the middle of its stop (store not closed).
        process.on('SIGTERM', () => onSignal('SIGTERM'));
        process.on('SIGINT', () => onSignal('SIGINT'));
      });
    });
}
