// Examples for every command's --help, in one table keyed by the command path ('' is `zmesh` itself, 'plan part'
// is `zmesh plan part`). attachExamples(program) adds them to the commander tree; the man page (scripts/gen-man.ts)
// prints the same table. test/unit/cli-examples.test.ts fails for a command without examples, and for an example
// whose command path, options or operands do not exist in the tree.
//
// File names are the repository's (examples/, labs/examples/) or the ones the README's walk-through creates
// (acme.key, shop.signed.json, plan.json); network, node and workload names are those files' (acme/shop/backend on
// node-a … node-d; the six-node lab "six" with amber/mesh/all).
import type { Command } from 'commander';

/** One example: the command line, or the command line and what it does. */
export type Example = string | readonly [command: string, note: string];

const ETCD = '--etcd https://10.0.0.1:2379 --cacert ca.pem --cert root.pem --key root-key.pem';

export const EXAMPLES: Readonly<Record<string, readonly Example[]>> = {
  '': [
    ['zmesh validate examples/tenant-blueprint.yaml', 'every problem of a blueprint at once'],
    ['zmesh plan shop.signed.json --nodes examples/nodes.yaml --out plan.json --summary', 'plan it over the nodes'],
    ['zmesh --socket /run/zmesh/admin.sock status', "any operator command, against one agent's socket"],
    ['zmesh --no-color net ls', 'no colours (as NO_COLOR=1)'],
  ],
  keygen: [
    ['zmesh keygen tenant acme.key --public-out acme.pub', 'a tenant signing key; prints the public key'],
    ['zmesh keygen node /var/lib/zmesh/identity.key', "a node's identity (the agent makes one on first start)"],
  ],
  'keygen tenant': [
    ['zmesh keygen tenant acme.key', 'prints the public key (for agents and `controller tenant add`)'],
    ['zmesh keygen tenant acme.key --public-out acme.pub', 'also writes it to a file (`verify --tenant-key acme.pub`)'],
  ],
  'keygen node': [
    ['zmesh keygen node /var/lib/zmesh/identity.key', 'the identityKeyFile of examples/agent.yaml'],
    ['zmesh keygen node node.key --public-out node.pub', 'its public key goes into the inventory (examples/nodes.yaml)'],
  ],
  'keygen operator': [['zmesh keygen operator op.key --public-out op.pub', 'signs enrollments: `controller node approve --sign op.key`']],
  'keygen controller': [['zmesh keygen controller ctl.key --public-out ctl.pub', 'signs node parts: `controller --signing-key ctl.key`']],
  sign: [
    'zmesh sign examples/tenant-blueprint.yaml --key acme.key --out shop.signed.json',
    ['zmesh sign - --key acme.key < shop.yaml > shop.signed.json', 'from stdin'],
  ],
  verify: [
    'zmesh verify shop.signed.json --tenant-key acme.pub',
    ['zmesh verify shop.signed.json --tenant-key 3qkMm7V9/+Zx9wvfnncYa68FYdi3wAY4oFQ8igBQarw=', 'the key as `keygen tenant` printed it'],
  ],
  validate: [
    'zmesh validate examples/tenant-blueprint.yaml',
    ['zmesh validate --json shop.yaml | jq .problems', 'each problem with code, path and hint'],
  ],
  plan: [
    'zmesh plan shop.signed.json --nodes examples/nodes.yaml --out plan.json --summary',
    ['zmesh plan shop.signed.json --nodes examples/nodes.yaml --previous plan.json --allow-same-version --diff --out plan2.json', 'stable re-plan; what changes per node'],
    ['zmesh plan shop.signed.json --nodes examples/nodes.yaml --out plan.json --access-out access', 'also access/backend-laptop.conf (wg-quick)'],
    ['zmesh plan examples/tenant-blueprint.yaml --nodes examples/nodes.yaml --part node-a', 'only what node-a would receive'],
  ],
  'plan part': [
    ['zmesh plan part plan.json node-a', 'what node-a receives from that plan'],
    'zmesh plan part plan.json node-d --out node-d.part.json',
  ],
  'plan expand': [
    ['zmesh plan expand plan.json --out plan.full.json', 'every resource with its peers (zmesh-plan/1)'],
  ],
  status: [
    ['zmesh status', 'node, data plane, networks, last reconcile, errors'],
    'zmesh status --json',
  ],
  net: [
    'zmesh net ls',
    'zmesh net show acme/shop/backend',
  ],
  'net ls': ['zmesh net ls', 'zmesh net ls -o wide', 'zmesh net ls -o yaml'],
  'net show': [
    ['zmesh net show acme/shop/backend', 'desired beside actual'],
    ['zmesh net show backend --json', 'a name unique on this node'],
  ],
  peers: [
    ['zmesh peers acme/shop/backend', 'handshake age, traffic, direct or relayed'],
    'zmesh peers acme/shop/backend --json',
  ],
  diagnose: [
    ['zmesh diagnose acme/shop/backend node-b', 'why this node cannot reach node-b: the first failed check'],
    ['zmesh diagnose acme/shop/backend workload:web workload:db --port tcp/5432', 'the policy rule that allows or drops web → db'],
  ],
  policy: [
    ['zmesh policy acme/shop/backend', 'rules with the packets and bytes counted here'],
    'zmesh policy acme/shop/backend --json',
  ],
  apply: [
    ['zmesh apply shop.signed.json --plan plan.json', "the agent's own part is cut out of the plan"],
    ['zmesh apply shop.signed.json --plan node-d.part.json', 'a part cut with `plan part`'],
  ],
  rm: [['zmesh rm acme/shop', "tear the blueprint's networks and workloads down"]],
  events: [
    ['zmesh events --follow', 'keep printing new events'],
    'zmesh events --after 120 --json',
  ],
  agent: [
    ['zmesh agent --config /etc/zmesh/agent.yaml', 'embedded control (example: examples/agent.yaml)'],
    ['zmesh agent --config /etc/zmesh/agent.yaml --etcd https://10.0.0.1:2379 --etcd-cacert ca.pem --etcd-cert node-a.pem --etcd-key node-a-key.pem', 'parts from etcd'],
  ],
  lab: [
    ['zmesh lab up labs/quickstart.yaml', 'build a lab and wait for a green matrix'],
    'zmesh lab down quickstart',
  ],
  'lab up': [
    'zmesh lab up labs/examples/six-nodes.yaml',
    ['zmesh lab up labs/quickstart.yaml --no-wait', 'do not wait for a green matrix'],
    ['zmesh lab up labs/examples/direct.yaml --name direct2 --json', 'a second copy under another name'],
  ],
  'lab matrix': [
    'zmesh lab matrix six',
    ['zmesh lab matrix six --json', 'every pair: {from, to, expect, ok, rttMs}; exit 1 if any is wrong'],
  ],
  'lab wait': [['zmesh lab wait six --timeout 300', 'until the matrix is green again, at most 5 minutes']],
  'lab status': ['zmesh lab status six', 'zmesh lab status six --json'],
  'lab exec': [
    ['zmesh lab exec six hid-1 -- wg show', "inside hid-1's namespaces"],
    'zmesh lab exec six pub-1 -- ip -brief address',
  ],
  'lab socket': [
    'zmesh lab socket six pub-1',
    ['zmesh --socket "$(zmesh lab socket six pub-1)" peers amber/mesh/all', "any operator command against pub-1's agent"],
  ],
  'lab candidates': [['zmesh lab candidates direct --once', 'one round: what each hidden node is told']],
  'lab graph': [
    ['zmesh lab graph six --out six.svg', 'tunnels coloured by handshake health'],
    ['zmesh lab graph six --out six.dot', 'DOT, without graphviz'],
  ],
  'lab fault': [
    'zmesh lab fault six pub-2 delay 100',
    'zmesh lab fault six hid-2 loss 5',
    ['zmesh lab fault six pub-2 restore --wait', '… and how long until green again'],
    'zmesh lab fault six hid-1 restart-agent --wait --timeout 60',
  ],
  'lab down': [
    'zmesh lab down six',
    ['zmesh lab down --all', 'every lab, and leftovers by prefix'],
  ],
  controller: [
    [`zmesh controller ${ETCD} auth enable`, 'etcd RBAC on'],
    [
      'zmesh controller --etcd https://10.0.0.1:2379 --cacert ca.pem --cert controller.pem --key controller-key.pem --signing-key ctl.key --operator-key op.pub',
      'run the controller',
    ],
  ],
  'controller tenant': [
    'zmesh controller --etcd http://127.0.0.1:2379 tenant add acme acme.pub',
    ['zmesh controller tenant ls', 'etcd from $ZMESH_ETCD'],
  ],
  'controller tenant add': [
    ['zmesh controller --etcd http://127.0.0.1:2379 tenant add acme acme.pub', 'the --public-out file of `keygen tenant`'],
    'zmesh controller tenant add acme 3qkMm7V9/+Zx9wvfnncYa68FYdi3wAY4oFQ8igBQarw=',
  ],
  'controller tenant ls': ['zmesh controller --etcd http://127.0.0.1:2379 tenant ls', 'zmesh controller tenant ls -o json'],
  'controller tenant rm': ['zmesh controller --etcd http://127.0.0.1:2379 tenant rm acme'],
  'controller node': [
    'zmesh controller node ls',
    'zmesh controller node approve node-a node.pub --sign op.key',
  ],
  'controller node approve': [
    ['zmesh controller node approve node-a node.pub --sign op.key', "pins node-a's identity key, makes its etcd role"],
    ['zmesh controller node approve node-a node.pub --sign op.key --replace', 'a re-installed node'],
  ],
  'controller node revoke': [['zmesh controller node revoke node-d', 'dropped from every plan at once']],
  'controller node ls': [
    ['zmesh controller node ls', 'trusted, pending approval, or refused (and why)'],
    'zmesh controller node ls -o wide',
  ],
  'controller auth': [[`zmesh controller ${ETCD} auth enable`, 'users root and zmesh-controller, then auth on']],
  'controller auth enable': [`zmesh controller ${ETCD} auth enable`],
  'controller apply': [['zmesh controller --etcd http://127.0.0.1:2379 apply shop.signed.json', 'the controller plans it'], 'zmesh controller apply - < shop.signed.json'],
  'controller remove': [['zmesh controller remove acme shop', 'every node tears its networks down']],
  'controller rebalance': [['zmesh controller rebalance', 'hidden nodes move to the least loaded public nodes'], 'zmesh controller rebalance --no-wait'],
  'controller status': [['zmesh controller status', 'leader, members, plan generations, what each node applied'], 'zmesh controller status --json'],
  ps: ['zmesh ps', 'zmesh ps -o wide'],
  logs: [
    ['zmesh logs acme/shop/web -f', 'follow'],
    ['zmesh logs db --tail 100', 'a name unique on this node'],
  ],
  vol: ['zmesh vol ls'],
  'vol ls': ['zmesh vol ls', 'zmesh vol ls -o json'],
  image: [['zmesh image base', 'zmesh/base:latest from the static busybox']],
  'image base': [
    'zmesh image base',
    'zmesh image base --docker-socket /run/docker.sock --busybox /bin/busybox --json',
  ],
  config: [['zmesh config show', 'socket, etcd, output and colour, and where each came from']],
  'config show': [
    ['zmesh config show', 'from a flag, the environment, the CLI config file, or the default'],
    ['zmesh --socket /tmp/a.sock config show --json', 'a flag wins over the environment and the config file'],
    'zmesh config view -o yaml',
  ],
  version: [
    'zmesh version',
    'zmesh version --json',
    ['zmesh version --wireguard-go /usr/bin/wireguard-go', 'ask this wireguard-go'],
  ],
  completion: [
    ['zmesh completion bash > /etc/bash_completion.d/zmesh', 'then: source /etc/bash_completion.d/zmesh'],
    'zmesh completion zsh > "${fpath[1]}/_zmesh"',
    'zmesh completion fish > ~/.config/fish/completions/zmesh.fish',
    ['zmesh completion fish | source', 'this fish only'],
  ],
};

/** The path of a command in the tree: '' for the program, 'plan part' for `zmesh plan part`. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

const NOTE_COLUMN = 56;

/**
 * The examples block as --help prints it (without the heading): one command a line, notes aligned after the
 * commands; a note of a command too long for that column goes on the next line, at the same column.
 */
export function formatExamples(list: readonly Example[]): string {
  const rows = list.map((e) => (typeof e === 'string' ? [e, ''] : [e[0], e[1]]));
  const width = Math.max(0, ...rows.filter(([c, n]) => n && c.length <= NOTE_COLUMN).map(([c]) => c.length));
  return rows
    .map(([c, n]) => (!n ? `  ${c}` : c.length <= width ? `  ${c.padEnd(width)}  # ${n}` : `  ${c}\n  ${' '.repeat(width)}  # ${n}`))
    .join('\n');
}

const attached = new WeakSet<Command>();

/** Adds an "Examples:" block after the help of every command of the tree that has examples in EXAMPLES. */
export function attachExamples(program: Command): void {
  const walk = (cmd: Command): void => {
    const list = EXAMPLES[commandPath(cmd)];
    if (list?.length && !attached.has(cmd)) {
      attached.add(cmd);
      cmd.addHelpText('after', `\nExamples:\n${formatExamples(list)}`);
    }
    cmd.commands.forEach(walk);
  };
  walk(program);
}
