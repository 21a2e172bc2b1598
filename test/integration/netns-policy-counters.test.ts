// The policy rules' counters as the kernel keeps them (issue #16): the tenant table rendered for a compiled
// policy, loaded into a throwaway namespace, a few flows over its loopback (each bound to a source address),
// then `nft -j list ruleset` read back through parseNftRuleset and policyCounters — per rule, the default, exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildNftReplace } from '../../netns/build.ts';
import { tenantNftSpec } from '../../netns/layout.ts';
import { namesFor } from '../../netns/names.ts';
import { firewallCounters, parseNftRuleset, policyCounters } from '../../netns/parse.ts';
import { compilePolicy } from '../../src/plan/policy.ts';
import { delNs, makeNs, rand, sh } from '../helpers/host.ts';

const ID = 'pctrtest01';

test('policy counters: accepted per rule (its protocols summed), dropped by the default; spoofed sources counted', { timeout: 60_000 }, async () => {
  const ns = `zt-${rand()}`;
  const outside = `zt-${rand()}`;
  try {
    await makeNs(ns);
    await makeNs(outside);
    const members = { nodes: { a: ['10.7.1.1/32', '10.7.1.254/32'], b: ['10.7.2.1/32', '10.7.2.254/32'] }, workloads: { web: '10.7.0.2/32', db: '10.7.1.2/32' }, devices: {} };
    const compiled = compilePolicy(
      {
        default: 'deny',
        rules: [
          { from: ['workload:web'], to: ['workload:db'], ports: ['tcp/5432', 'udp/5353', 'icmp'] },
          { from: ['any'], to: ['node:a'], ports: ['udp/9999'] },
          { from: ['any'], to: ['node:b'], ports: ['any'] },
        ],
      },
      '10.7.0.0/16',
      members,
      { workloads: {}, devices: {} },
      { node: members.nodes.a, workloads: ['db'], devices: [] },
    );
    const names = namesFor(ID);
    await sh(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: buildNftReplace(tenantNftSpec(names, false, '10.7.1.0/24', [], compiled)) });
    for (const a of ['10.7.0.2/32', '10.7.1.1/32', '10.7.1.2/32']) await sh(['ip', '-n', ns, 'addr', 'add', a, 'dev', 'lo']);
    const inNs = (js: string) => sh(['ip', 'netns', 'exec', ns, process.execPath, '-e', js]);
    const udp = (dst: string, port: number) =>
      inNs(`const s = require('node:dgram').createSocket('udp4'); s.bind({ address: '10.7.0.2' }, () => s.send(Buffer.from('ping'), ${port}, '${dst}', () => s.close()));`);
    // New flows from web (10.7.0.2): icmp, udp/5353 and tcp/5432 to db by rule 0; udp/9999 to a's gateway by
    // rule 1; udp/54 to db dropped. Replies (and port unreachables) go to 10.7.0.2, which this node does not guard.
    await sh(['ip', 'netns', 'exec', ns, 'ping', '-n', '-q', '-c', '1', '-W', '2', '-I', '10.7.0.2', '10.7.1.2']);
    // (Not port 53: over the loopback db's address is the namespace's own, and port 53 to the namespace is its
    // resolver's, accepted before any policy rule: pol-dns, docs/dns.md#policy.)
    await udp('10.7.1.2', 5353);
    await udp('10.7.1.1', 9999);
    await udp('10.7.1.2', 54);
    await inNs(
      "const c = require('node:net').connect({ host: '10.7.1.2', port: 5432, localAddress: '10.7.0.2' }); c.on('error', () => {}); c.on('close', () => process.exit(0)); setTimeout(() => process.exit(0), 3000);",
    );
    // A workload on the bridge b-<id> sending from an address outside the node's subnet (10.7.1.0/24): dropped
    // by in-spoof, and counted (two pings of 84 bytes).
    await sh(['ip', 'link', 'add', 'name', names.bridge, 'netns', ns, 'type', 'veth', 'peer', 'name', 'v0', 'netns', outside]);
    await sh(['ip', '-n', ns, 'link', 'set', names.bridge, 'up']);
    await sh(['ip', '-n', outside, 'link', 'set', 'v0', 'up']);
    await sh(['ip', '-n', outside, 'addr', 'add', '10.9.9.9/32', 'dev', 'v0']);
    await sh(['ip', '-n', outside, 'route', 'add', '10.7.1.1/32', 'dev', 'v0']);
    await sh(['ip', 'netns', 'exec', outside, 'ping', '-n', '-q', '-c', '2', '-i', '0.2', '-W', '1', '-I', '10.9.9.9', '10.7.1.1'], { okCodes: [1] });
    const listed = await sh(['ip', 'netns', 'exec', ns, 'nft', '-j', 'list', 'ruleset']);
    const table = parseNftRuleset(listed.stdout).find((t) => t.name === names.nftTenant)!;
    assert.ok(table, 'the tenant table is there');
    // The SYN (a refused connection: the RST goes back unguarded) is 60 bytes with Linux's default options.
    assert.deepEqual(policyCounters(table.rules), {
      rules: [
        { index: 0, packets: 3, bytes: 84 + 32 + 60 },
        { index: 1, packets: 1, bytes: 32 },
      ],
      default: { action: 'drop', packets: 1, bytes: 32 },
    });
    // Every rule of the policy chains with a counter keeps it in the parse; rule 2 guards nothing here.
    const counted = table.rules.filter((r) => r.chain.startsWith('policy-') && r.counter).map((r) => `${r.chain} ${r.comment!.split(':')[2]} ${r.counter!.packets}`);
    // Over the loopback every flow is delivered locally: the input chain counted them, forward none, and output
    // (what the node itself sends its workloads and devices) none: every flow here came from 10.7.0.2.
    assert.deepEqual(counted, [
      'policy-in r0-tcp 1',
      'policy-in r0-udp 1',
      'policy-in r0-icmp 1',
      'policy-in r1-udp 1',
      'policy-in default-drop 1',
      'policy-fwd r0-tcp 0',
      'policy-fwd r0-udp 0',
      'policy-fwd r0-icmp 0',
      'policy-fwd r1-udp 0',
      'policy-fwd default-drop 0',
      'policy-out r0-tcp 0',
      'policy-out r0-udp 0',
      'policy-out r0-icmp 0',
      'policy-out r1-udp 0',
      'policy-out default-drop 0',
    ]);
    // The whole table's counting rules (`zmesh diagnose`): the spoofed pings dropped by in-spoof, the policy's
    // drops and accepts (three chains each), summed.
    assert.deepEqual(firewallCounters(table.rules), {
      rules: [
        { tag: 'in-ra', verdict: 'drop', packets: 0, bytes: 0 },
        { tag: 'in-spoof', verdict: 'drop', packets: 2, bytes: 168 },
        { tag: 'fwd-spoof', verdict: 'drop', packets: 0, bytes: 0 },
        { tag: 'out-spoof', verdict: 'drop', packets: 0, bytes: 0 },
        { tag: 'r0-tcp', verdict: 'accept', packets: 1, bytes: 60 },
        { tag: 'r0-udp', verdict: 'accept', packets: 1, bytes: 32 },
        { tag: 'r0-icmp', verdict: 'accept', packets: 1, bytes: 84 },
        { tag: 'r1-udp', verdict: 'accept', packets: 1, bytes: 32 },
        { tag: 'default-drop', verdict: 'drop', packets: 1, bytes: 32 },
      ],
      dropped: { packets: 3, bytes: 200 },
      accepted: { packets: 4, bytes: 208 },
    });
  } finally {
    await delNs(ns);
    await delNs(outside);
  }
});
