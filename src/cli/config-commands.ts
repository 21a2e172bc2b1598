// `zmesh config show` (alias `view`): the effective operator settings and where each came from — a flag, a
// variable, the CLI config file (docs/cli-config.md) or the built-in default. Paths only, never file contents.
import { Option, type Command } from 'commander';
import { yamlLib } from '../yaml-lib.ts';
import { table } from './text.ts';

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('the CLI config file (socket, etcd endpoints and TLS files, output, colour)');
  config
    .command('show')
    .alias('view')
    .description('the effective settings and where each came from (flag, environment, config file, default)')
    .option('--json', 'print JSON')
    .addOption(new Option('-o, --output <format>', 'json or yaml').choices(['json', 'yaml']))
    .action(async (flags: { json?: boolean; output?: string }) => {
      const { cliSettings, colourSetting } = await import('./config.ts');
      const root = program.opts() as { socket?: string; color?: boolean };
      // Only the root's flags apply here: -o/--json choose how this command prints, not the `output` setting.
      const s = cliSettings({ socket: root.socket, color: root.color });
      const settings = {
        socket: s.socket,
        'etcd.endpoints': s.etcdEndpoints,
        'etcd.cacert': s.etcdCacert,
        'etcd.cert': s.etcdCert,
        'etcd.key': s.etcdKey,
        output: s.output,
        color: colourSetting(s),
      };
      const data = { file: s.file, settings };
      const format = flags.json ? 'json' : flags.output;
      if (format === 'json') return void process.stdout.write(JSON.stringify(data, null, 2) + '\n');
      if (format === 'yaml') return void process.stdout.write(yamlLib().stringify(data)); // loaded here: not at start
      const cell = (v: unknown) => (v === null ? '-' : Array.isArray(v) ? v.join(',') : String(v));
      const rows = Object.entries(settings).map(([k, v]) => [k, cell(v.value), v.source === 'default' ? 'default' : `${v.source} ${v.from}`]);
      process.stdout.write(`${table([['SETTING', 'VALUE', 'FROM'], ...rows])}\nconfig file: ${s.file ?? 'none'}\n`);
    });
}
