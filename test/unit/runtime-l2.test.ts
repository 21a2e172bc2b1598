// L2 binding of workload ports (runtime/l2.ts): the nft table text, exact; parsing `nft -j list table` as
// nft 1.0.6 writes it; the smallest change for every live state; CHECK of one port's binding.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { L2_FINGERPRINT, L2_HASH, addressMac, compareBinding, l2DeleteTableText, l2ElementText, l2Plan, l2ReplaceText, l2TableText, parseL2, type L2State, type PortBinding } from '../../runtime/index.ts';

const A: PortBinding = { ifname: 'v-aaaa', mac: '02:5a:0a:09:00:0a', ip: '10.9.0.10' };
const B: PortBinding = { ifname: 'v-bbbb', mac: '02:5a:0a:09:00:0b', ip: '10.9.0.11' };
/** A dual-stack workload's port. */
const A6: PortBinding = { ...A, ip6: 'fd00:9::a' };

/** `nft -j list table bridge zmesh-wl` of nft 1.0.6 after l2ReplaceText([B, A6]) (rule expressions left out). */
const LISTED = '{"nftables":[{"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},{"table":{"family":"bridge","name":"zmesh-wl","handle":2}},{"set":{"family":"bridge","name":"ports","table":"zmesh-wl","type":["ifname","ether_addr","ipv4_addr"],"handle":2,"elem":[{"concat":["v-aaaa","02:5a:0a:09:00:0a","10.9.0.10"]},{"concat":["v-bbbb","02:5a:0a:09:00:0b","10.9.0.11"]}]}},{"set":{"family":"bridge","name":"ports6","table":"zmesh-wl","type":["ifname","ether_addr","ipv6_addr"],"handle":3,"elem":[{"concat":["v-aaaa","02:5a:0a:09:00:0a","fd00:9::a"]}]}},{"set":{"family":"bridge","name":"nd6","table":"zmesh-wl","type":["ifname","ether_addr","integer"],"handle":4,"elem":[{"concat":["v-aaaa","02:5a:0a:09:00:0a","0xfd00000900000000000000000000000a"]}]}},{"chain":{"family":"bridge","table":"zmesh-wl","name":"ports-in","handle":1,"type":"filter","hook":"prerouting","prio":-200,"policy":"accept"}},{"rule":{"family":"bridge","table":"zmesh-wl","chain":"ports-in","handle":5,"comment":"zmesh-wl:5129b5090d:other-ports","expr":[]}},{"rule":{"family":"bridge","table":"zmesh-wl","chain":"ports-in","handle":6,"comment":"zmesh-wl:5129b5090d:ipv4","expr":[]}},{"rule":{"family":"bridge","table":"zmesh-wl","chain":"ports-in","handle":8,"comment":"zmesh-wl:5129b5090d:arp","expr":[]}},{"rule":{"family":"bridge","table":"zmesh-wl","chain":"ports-in","handle":9,"comment":"zmesh-wl:5129b5090d:nd-advert","expr":[]}},{"rule":{"family":"bridge","table":"zmesh-wl","chain":"ports-in","handle":10,"comment":"zmesh-wl:5129b5090d:ipv6","expr":[]}},{"rule":{"family":"bridge","table":"zmesh-wl","chain":"ports-in","handle":11,"comment":"zmesh-wl:5129b5090d:drop","expr":[]}}]}';

test('the table: exact text, elements sorted, every rule commented with the hash of the rules', () => {
  assert.equal(L2_HASH, '5129b5090d');
  assert.equal(
    l2TableText([B, A6]),
    'table bridge zmesh-wl {\n' +
      '\tcomment "zmesh runtime: workload ports send only from their planned MAC and addresses"\n' +
      '\tset ports {\n' +
      '\t\ttype ifname . ether_addr . ipv4_addr\n' +
      '\t\telements = { "v-aaaa" . 02:5a:0a:09:00:0a . 10.9.0.10, "v-bbbb" . 02:5a:0a:09:00:0b . 10.9.0.11 }\n' +
      '\t}\n' +
      '\tset ports6 {\n' +
      '\t\ttype ifname . ether_addr . ipv6_addr\n' +
      '\t\telements = { "v-aaaa" . 02:5a:0a:09:00:0a . fd00:9::a }\n' +
      '\t}\n' +
      '\tset nd6 {\n' +
      '\t\ttypeof iifname . ether saddr . @th,64,128\n' +
      '\t\telements = { "v-aaaa" . 02:5a:0a:09:00:0a . 0xfd00000900000000000000000000000a }\n' +
      '\t}\n' +
      '\tchain ports-in {\n' +
      '\t\ttype filter hook prerouting priority filter; policy accept;\n' +
      '\t\tiifname != "v-*" accept comment "zmesh-wl:5129b5090d:other-ports"\n' +
      '\t\tether type ip iifname . ether saddr . ip saddr @ports accept comment "zmesh-wl:5129b5090d:ipv4"\n' +
      '\t\tether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4 arp operation { request, reply } iifname . ether saddr . arp saddr ip @ports iifname . arp saddr ether . arp saddr ip @ports accept comment "zmesh-wl:5129b5090d:arp"\n' +
      '\t\tether type ip6 icmpv6 type nd-neighbor-advert iifname . ether saddr . @th,64,128 != @nd6 drop comment "zmesh-wl:5129b5090d:nd-advert"\n' +
      '\t\tether type ip6 iifname . ether saddr . ip6 saddr @ports6 accept comment "zmesh-wl:5129b5090d:ipv6"\n' +
      '\t\tcounter drop comment "zmesh-wl:5129b5090d:drop"\n' +
      '\t}\n' +
      '}\n',
  );
  assert.doesNotMatch(l2TableText([]), /elements/, 'an empty set has no elements line');
  assert.equal(l2ReplaceText([]).split('\n').slice(0, 3).join('\n'), 'table bridge zmesh-wl\ndelete table bridge zmesh-wl\ntable bridge zmesh-wl {', 'create-or-replace in one transaction');
  assert.equal(l2DeleteTableText(), 'delete table bridge zmesh-wl\n');
  assert.equal(
    l2ElementText([B], [{ ...B, ip: '10.9.0.12' }]),
    'delete element bridge zmesh-wl ports { "v-bbbb" . 02:5a:0a:09:00:0b . 10.9.0.11 }\nadd element bridge zmesh-wl ports { "v-bbbb" . 02:5a:0a:09:00:0b . 10.9.0.12 }\n',
  );
  assert.equal(
    l2ElementText([], [A6]),
    'add element bridge zmesh-wl ports { "v-aaaa" . 02:5a:0a:09:00:0a . 10.9.0.10 }\n' +
      'add element bridge zmesh-wl ports6 { "v-aaaa" . 02:5a:0a:09:00:0a . fd00:9::a }\n' +
      'add element bridge zmesh-wl nd6 { "v-aaaa" . 02:5a:0a:09:00:0a . 0xfd00000900000000000000000000000a }\n',
  );
  assert.equal(l2ElementText([], []), '');
  assert.deepEqual(L2_FINGERPRINT, ['other-ports', 'ipv4', 'arp', 'nd-advert', 'ipv6', 'drop'].map((t) => `zmesh-wl:5129b5090d:${t}`));
});

test('builders refuse what is not a port name, a MAC or an address (nothing reaches nft unchecked)', () => {
  for (const bad of [{ ...A, ip6: 'fd00::1 } ; flush ruleset' }, { ...A, ip6: 'FD00::1' }, { ...A, ip6: 'fd00:0::1' }, { ...A, ifname: 'v-a" accept' }, { ...A, mac: '02:5A:0a:09:00:0a' }, { ...A, mac: '02:5a:0a:09:00' }, { ...A, ip: '10.9.0.10 } ; flush ruleset' }, { ...A, ifname: 'v-' + 'x'.repeat(14) }]) {
    assert.throws(() => l2ElementText([], [bad]), TypeError, JSON.stringify(bad));
  }
  assert.equal(addressMac('10.9.0.10'), A.mac, 'the MAC bound is the one attach gives eth0');
});

test('parseL2: the listed table, a missing table, an element wrapped with options, a changed rule', () => {
  assert.deepEqual(parseL2(LISTED), { exists: true, current: true, elements: [A6, B] });
  const ndOff = JSON.parse(LISTED);
  ndOff.nftables.find((x: { set?: { name: string } }) => x.set?.name === 'nd6').set.elem = [];
  assert.equal(parseL2(JSON.stringify(ndOff)).current, false, 'an IPv6 port without its ND target is rebuilt');
  assert.deepEqual(parseL2(''), { exists: false, current: false, elements: [] });
  const j = JSON.parse(LISTED);
  const set = j.nftables.find((x: { set?: unknown }) => x.set).set;
  for (const x of j.nftables) if (x.set && x.set.name !== 'ports') x.set.elem = [];
  set.elem = [{ elem: { val: { concat: ['v-cccc', '02:5A:0A:09:00:0C', '10.9.0.12'] }, comment: 'x' } }];
  assert.deepEqual(parseL2(JSON.stringify(j)).elements, [{ ifname: 'v-cccc', mac: '02:5a:0a:09:00:0c', ip: '10.9.0.12' }]);
  const edited = JSON.parse(LISTED);
  edited.nftables.find((x: { rule?: { comment: string } }) => x.rule?.comment.endsWith(':arp')).rule.comment = 'someone else';
  assert.equal(parseL2(JSON.stringify(edited)).current, false, 'a rule that is not ours');
  const hooked = JSON.parse(LISTED);
  hooked.nftables.find((x: { chain?: unknown }) => x.chain).chain.policy = 'drop';
  assert.equal(parseL2(JSON.stringify(hooked)).current, false, 'another policy');
  const extra = JSON.parse(LISTED);
  extra.nftables.push({ chain: { family: 'bridge', table: 'zmesh-wl', name: 'sneaky', handle: 9 } });
  assert.equal(parseL2(JSON.stringify(extra)).current, false, 'a chain of someone else');
  const retyped = JSON.parse(LISTED);
  retyped.nftables.find((x: { set?: unknown }) => x.set).set.type = ['ifname', 'ether_addr'];
  assert.equal(parseL2(JSON.stringify(retyped)).current, false, 'another set type');
});

test('l2Plan: the smallest change for each live state; nothing when bound', () => {
  const live = (elements: PortBinding[], current = true): L2State => ({ exists: true, current, elements });
  const cases: [string, L2State, PortBinding[], string[], string][] = [
    ['bound already', live([A, B]), [A], [], ''],
    ['a new port', live([A]), [B], [], 'add element bridge zmesh-wl ports { "v-bbbb" . 02:5a:0a:09:00:0b . 10.9.0.11 }\n'],
    ['the port moved to another address', live([A, B]), [{ ...B, ip: '10.9.0.12', mac: addressMac('10.9.0.12') }], [],
      'delete element bridge zmesh-wl ports { "v-bbbb" . 02:5a:0a:09:00:0b . 10.9.0.11 }\nadd element bridge zmesh-wl ports { "v-bbbb" . 02:5a:0a:09:00:0c . 10.9.0.12 }\n'],
    ['the port gained IPv6 (a re-plan made the network dual-stack)', live([A, B]), [A6], [],
      'delete element bridge zmesh-wl ports { "v-aaaa" . 02:5a:0a:09:00:0a . 10.9.0.10 }\n' +
        'add element bridge zmesh-wl ports { "v-aaaa" . 02:5a:0a:09:00:0a . 10.9.0.10 }\n' +
        'add element bridge zmesh-wl ports6 { "v-aaaa" . 02:5a:0a:09:00:0a . fd00:9::a }\n' +
        'add element bridge zmesh-wl nd6 { "v-aaaa" . 02:5a:0a:09:00:0a . 0xfd00000900000000000000000000000a }\n'],
    ['a dual-stack port bound already', live([A6, B]), [A6], [], ''],
    ['unbind one', live([A, B]), [], ['v-aaaa'], 'delete element bridge zmesh-wl ports { "v-aaaa" . 02:5a:0a:09:00:0a . 10.9.0.10 }\n'],
    ['unbind one that is not bound', live([B]), [], ['v-aaaa'], ''],
    ['no table: made with the port', { exists: false, current: false, elements: [] }, [A], [], l2ReplaceText([A])],
    ['a table not current: rebuilt keeping the others', live([A, B], false), [{ ...A }], [], l2ReplaceText([A, B])],
    ['not current and unbinding: rebuilt without it', live([A, B], false), [], ['v-bbbb'], l2ReplaceText([A])],
  ];
  for (const [name, l, want, unbind, text] of cases) assert.equal(l2Plan(l, want, unbind), text, name);
});

test('compareBinding: one named case per kind of drift', () => {
  const cases: [string, L2State, string[]][] = [
    ['bound', { exists: true, current: true, elements: [A, B] }, []],
    ['no table', { exists: false, current: false, elements: [] }, ['nft table bridge zmesh-wl is missing']],
    ['table changed', { exists: true, current: false, elements: [A] }, ['nft table bridge zmesh-wl is not current']],
    ['not bound', { exists: true, current: true, elements: [B] }, ['v-aaaa is bound to [], expected 02:5a:0a:09:00:0a 10.9.0.10']],
    ['bound to another address', { exists: true, current: true, elements: [{ ...A, ip: '10.9.0.99' }] }, ['v-aaaa is bound to [02:5a:0a:09:00:0a 10.9.0.99], expected 02:5a:0a:09:00:0a 10.9.0.10']],
    ['bound twice', { exists: true, current: true, elements: [A, { ...A, ip: '10.9.0.99' }] }, ['v-aaaa is bound to [02:5a:0a:09:00:0a 10.9.0.10, 02:5a:0a:09:00:0a 10.9.0.99], expected 02:5a:0a:09:00:0a 10.9.0.10']],
  ];
  for (const [name, l, want] of cases) assert.deepEqual(compareBinding(l, A), want, name);
});
