// Parsers of `ip -json`, `wg show dump` and `nft -j` against exact text captured from iproute2 6.1,
// wireguard-tools 1.0.20210914 and nftables 1.0.6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseIpLinks,
  parseIpAddrs,
  parseIpRoutes,
  parseIpv4Forwarding,
  parseNetnsList,
  parseNftRuleset,
  parseWgDump,
  splitJsonValues,
  ParseError,
} from '../../netns/parse.ts';

const ADDR_SHOW =
  '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","ifalias":"zmesh:abcdefghij","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295}]},' +
  '{"ifindex":2,"ifname":"b-abcdefghij","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1420,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"ether","address":"da:70:4f:0b:94:50","broadcast":"ff:ff:ff:ff:ff:ff","ifalias":"zmesh:abcdefghij","linkinfo":{"info_kind":"bridge","info_data":{"forward_delay":1500,"stp_state":0}},"addr_info":[{"family":"inet","local":"10.1.3.1","prefixlen":24,"scope":"global","label":"b-abcdefghij","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::d870:4fff:fe0b:9450","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]},' +
  '{"ifindex":5,"ifname":"w-abcdefghij","flags":["POINTOPOINT","MULTICAST","NOARP"],"mtu":1420,"qdisc":"pfifo_fast","operstate":"DOWN","group":"default","txqlen":500,"link_type":"none","linkinfo":{"info_kind":"tun","info_data":{"type":"tun","pi":false,"vnet_hdr":false,"multi_queue":false,"persist":false}},"addr_info":[]},' +
  '{"ifindex":7,"link_index":8,"ifname":"eg-abcdefghij","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","master":"br0","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether","address":"5e:b5:60:72:81:2d","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"linkinfo":{"info_kind":"veth"},"addr_info":[{"family":"inet","local":"169.254.20.2","prefixlen":30,"scope":"global","label":"eg-abcdefghij"}]}]';

test('ip -json addr show → links with addresses', () => {
  assert.deepEqual(parseIpLinks(ADDR_SHOW), [
    { index: 1, name: 'lo', kind: 'loopback', mtu: 65536, up: true, operstate: 'UNKNOWN', alias: 'zmesh:abcdefghij', master: null, mac: null, addrs: [{ dev: 'lo', family: 'inet', cidr: '127.0.0.1/8', scope: 'host' }] },
    {
      index: 2,
      name: 'b-abcdefghij',
      kind: 'bridge',
      mtu: 1420,
      up: true,
      operstate: 'UNKNOWN',
      alias: 'zmesh:abcdefghij',
      master: null,
      mac: 'da:70:4f:0b:94:50',
      addrs: [
        { dev: 'b-abcdefghij', family: 'inet', cidr: '10.1.3.1/24', scope: 'global' },
        { dev: 'b-abcdefghij', family: 'inet6', cidr: 'fe80::d870:4fff:fe0b:9450/64', scope: 'link' },
      ],
    },
    { index: 5, name: 'w-abcdefghij', kind: 'tun', mtu: 1420, up: false, operstate: 'DOWN', alias: null, master: null, mac: null, addrs: [] },
    { index: 7, name: 'eg-abcdefghij', kind: 'veth', mtu: 1500, up: true, operstate: 'UP', alias: null, master: 'br0', mac: '5e:b5:60:72:81:2d', addrs: [{ dev: 'eg-abcdefghij', family: 'inet', cidr: '169.254.20.2/30', scope: 'global' }] },
  ]);
  assert.deepEqual(
    parseIpAddrs(ADDR_SHOW).map((a) => `${a.dev} ${a.cidr}`),
    ['lo 127.0.0.1/8', 'b-abcdefghij 10.1.3.1/24', 'b-abcdefghij fe80::d870:4fff:fe0b:9450/64', 'eg-abcdefghij 169.254.20.2/30'],
  );
});

test('ip -json link show (no -d) → the link type stands in for the kind', () => {
  const text = '[{"ifindex":3,"ifname":"u0","flags":["BROADCAST","MULTICAST","UP"],"mtu":1400,"qdisc":"noqueue","operstate":"UP","link_type":"ether"}]';
  assert.deepEqual(parseIpLinks(text), [{ index: 3, name: 'u0', kind: 'ether', mtu: 1400, up: true, operstate: 'UP', alias: null, master: null, mac: null, addrs: [] }]);
  assert.deepEqual(parseIpLinks(''), []);
  assert.throws(() => parseIpLinks('{"a":1}'), ParseError);
  assert.throws(() => parseIpLinks('[{"mtu":1}]'), /without ifname/);
});

test('ip -json route show → canonical destinations, protocol and gateway', () => {
  const text =
    '[{"dst":"default","gateway":"169.254.20.1","dev":"eg-abcdefghij","protocol":"static","flags":[]},' +
    '{"dst":"10.1.0.0/16","dev":"w-abcdefghij","protocol":"static","scope":"link","flags":[]},' +
    '{"dst":"10.1.3.0/24","dev":"b-abcdefghij","protocol":"kernel","scope":"link","prefsrc":"10.1.3.1","flags":["linkdown"]},' +
    '{"dst":"10.9.9.9","dev":"w-abcdefghij","scope":"link","flags":[]},' +
    '{"type":"unreachable","dst":"10.8.0.0/16","flags":[]}]';
  assert.deepEqual(parseIpRoutes(text), [
    { dst: 'default', dev: 'eg-abcdefghij', gateway: '169.254.20.1', protocol: 'static', scope: 'global', type: 'unicast' },
    { dst: '10.1.0.0/16', dev: 'w-abcdefghij', gateway: null, protocol: 'static', scope: 'link', type: 'unicast' },
    { dst: '10.1.3.0/24', dev: 'b-abcdefghij', gateway: null, protocol: 'kernel', scope: 'link', type: 'unicast' },
    { dst: '10.9.9.9/32', dev: 'w-abcdefghij', gateway: null, protocol: 'boot', scope: 'link', type: 'unicast' },
    { dst: '10.8.0.0/16', dev: null, gateway: null, protocol: 'boot', scope: 'global', type: 'unreachable' },
  ]);
});

test('ip -json netconf show / netns list', () => {
  const netconf =
    '[{"family":"inet","interface":"lo","forwarding":false,"rp_filter":"off"},{"family":"inet","interface":"all","forwarding":true,"rp_filter":"off"},' +
    '{"family":"inet6","interface":"all","forwarding":false}]';
  assert.equal(parseIpv4Forwarding(netconf), true);
  assert.throws(() => parseIpv4Forwarding('[]'), /no inet "all"/);
  assert.deepEqual(parseNetnsList('[{"name":"n-abcdefghij","id":0},{"name":"other"}]'), ['n-abcdefghij', 'other']);
  assert.deepEqual(parseNetnsList(''), []);
});

test('ip -json -batch output splits into one value per command', () => {
  const out = '[{"ifname":"lo","s":"a]b\\"["}]\n[]\n[{"family":"inet"}]\n';
  assert.deepEqual(splitJsonValues(out), [[{ ifname: 'lo', s: 'a]b"[' }], [], [{ family: 'inet' }]]);
  assert.throws(() => splitJsonValues('[{"a":1}'), /truncated/);
  // Not one value per line: the same values, by the scan.
  assert.deepEqual(splitJsonValues('[\n {"a": "x\\n]"},\n 2\n]\n[] {"b":[1]}\nnot json\n[3]\n'), [[{ a: 'x\n]' }, 2], [], { b: [1] }, [3]]);
  assert.deepEqual(splitJsonValues('[1] [2]\n'), [[1], [2]]);
  assert.deepEqual(splitJsonValues('\n\n[1]\n\n{"c":{}}\n'), [[1], { c: {} }]);
  assert.throws(() => splitJsonValues('[1]\n[2'), /truncated/);
});

const K1 = 'uDQGRd21oGG6fCisU/PmbEOZitpeuhz303F3P3ZSi0Y=';
const K2 = 'vF78/cGqsG+LTCMg/1PBDslFvYhupfEi98xsBbJlMmE=';
const PRIV = 'wJHey2sQhHtGXfhVI9DSoJbsfn2L40RjGW6bP8WXV0I=';

test('wg show <if> dump: interface line, peers, "(none)" and "off"; the private key is dropped', () => {
  const text =
    `${PRIV}\tb2Gw5AOAjQFcoC5jl8fbi+xEVGJXTd2gWj8BEAFC8wU=\t51820\toff\n` +
    `${K1}\t(none)\t203.0.113.2:51821\t10.1.2.0/24,10.1.9.0/24\t1700000000\t9236\t8972\toff\n` +
    `${K2}\t(none)\t[2001:DB8::0001]:51822\t(none)\t0\t0\t148\t25\n`;
  const dev = parseWgDump(text);
  assert.deepEqual(dev, {
    hasPrivateKey: true,
    publicKey: 'b2Gw5AOAjQFcoC5jl8fbi+xEVGJXTd2gWj8BEAFC8wU=',
    listenPort: 51820,
    fwmark: null,
    peers: [
      { publicKey: K1, hasPresharedKey: false, endpoint: '203.0.113.2:51821', allowedIps: ['10.1.2.0/24', '10.1.9.0/24'], latestHandshake: 1700000000, rxBytes: 9236, txBytes: 8972, persistentKeepalive: null },
      { publicKey: K2, hasPresharedKey: false, endpoint: '[2001:db8::1]:51822', allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 148, persistentKeepalive: 25 },
    ],
  });
  assert.ok(!JSON.stringify(dev).includes(PRIV));
  assert.deepEqual(parseWgDump('(none)\t(none)\t0\t0x1f\n'), { hasPrivateKey: false, publicKey: null, listenPort: 0, fwmark: 31, peers: [] });
  assert.throws(() => parseWgDump('a\tb\n'), /4/);
  assert.throws(() => parseWgDump(`${PRIV}\t${K1}\t1\toff\n${K2}\t(none)\n`), /peer line 1/);
});

test('nft -j list ruleset → tables, chains and rule comments', () => {
  const text =
    '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, ' +
    '{"table": {"family": "inet", "name": "zmesh_abcdefghij", "handle": 1}}, ' +
    '{"chain": {"family": "inet", "table": "zmesh_abcdefghij", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, ' +
    '{"chain": {"family": "inet", "table": "zmesh_abcdefghij", "name": "postrouting", "handle": 3, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}, ' +
    '{"rule": {"family": "inet", "table": "zmesh_abcdefghij", "chain": "input", "handle": 4, "comment": "zmesh:0123456789:in-established", "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, ' +
    '{"rule": {"family": "inet", "table": "zmesh_abcdefghij", "chain": "postrouting", "handle": 8, "expr": [{"masquerade": null}]}}, ' +
    '{"table": {"family": "ip", "name": "nat", "handle": 2}}]}';
  assert.deepEqual(parseNftRuleset(text), [
    {
      family: 'inet',
      name: 'zmesh_abcdefghij',
      handle: 1,
      chains: [
        { name: 'input', type: 'filter', hook: 'input', prio: 0, policy: 'accept' },
        { name: 'postrouting', type: 'nat', hook: 'postrouting', prio: 100, policy: 'accept' },
      ],
      rules: [
        { chain: 'input', handle: 4, comment: 'zmesh:0123456789:in-established', verdict: 'accept' },
        { chain: 'postrouting', handle: 8, comment: null },
      ],
      sets: [],
    },
    { family: 'ip', name: 'nat', handle: 2, chains: [], rules: [], sets: [] },
  ]);
  assert.deepEqual(parseNftRuleset('{"nftables": [{"metainfo": {"version": "1.0.6"}}]}'), []);
  // Named interval sets as nft 1.0.6 prints them: bare addresses, prefixes and ranges; an empty set has no elem.
  const sets =
    '{"nftables": [{"table": {"family": "inet", "name": "zmesh_h_abcdefghij", "handle": 1}}, ' +
    '{"set": {"family": "inet", "name": "blocked4", "table": "zmesh_h_abcdefghij", "type": "ipv4_addr", "handle": 2, "flags": ["interval"], ' +
    '"elem": [{"prefix": {"addr": "0.0.0.0", "len": 8}}, {"range": ["11.0.0.0", "11.0.0.5"]}, "192.0.2.5"]}}, ' +
    '{"set": {"family": "inet", "name": "blocked6", "table": "zmesh_h_abcdefghij", "type": "ipv6_addr", "handle": 3, "flags": ["interval"], ' +
    '"elem": [{"prefix": {"addr": "::", "len": 8}}, "2001:DB8:1::5", {"range": ["2001:db8:2::", "2001:db8:2::9"]}]}}, ' +
    '{"set": {"family": "inet", "name": "empty", "table": "zmesh_h_abcdefghij", "type": "ipv4_addr", "handle": 4, "flags": ["interval"]}}]}';
  assert.deepEqual(parseNftRuleset(sets)[0].sets, [
    { name: 'blocked4', elements: ['0.0.0.0/8', '11.0.0.0-11.0.0.5', '192.0.2.5/32'] },
    { name: 'blocked6', elements: ['::/8', '2001:db8:1::5/128', '2001:db8:2::-2001:db8:2::9'] },
    { name: 'empty', elements: [] },
  ]);
  assert.throws(() => parseNftRuleset('[]'), /nftables/);
});
