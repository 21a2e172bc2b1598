// Signature checks per record, side by side (issue #17: the controller verifies every node's signed registration
// and enrollment; 10,000 nodes): XEdDSA (a node's X25519 identity signs its registration and status) and ed25519
// (operator-signed enrollments, controller-signed parts and candidate tables), each with @noble/curves' pure-JS
// strict verify (what zmesh used before) and with Node's own ed25519 (OpenSSL), as src/crypto verifies now.
// Usage: node --import tsx bench/verify.ts [COUNT=2000]. Prints µs per verification and the speed-up.
import { ed25519 } from '@noble/curves/ed25519.js';
import { ed25519KeyPair, ed25519Sign, ed25519Verify, x25519KeyPair } from '../src/crypto/keys.ts';
import { seededRandom } from '../src/crypto/rng.ts';
import { xeddsaPublicKey, xeddsaSign, xeddsaVerify } from '../src/crypto/xeddsa.ts';

const COUNT = Number(process.argv[2] ?? 2000);
const rnd = seededRandom('bench-verify');
const msg = (i: number) => new TextEncoder().encode(`zmesh-record/v1\n/zmesh/v1/nodes/n${i}\n{"id":"n${i}","endpoints":["198.18.0.${i % 250}"],"reservedPorts":[]}`);

function time(label: string, fn: (i: number) => boolean): number {
  for (let i = 0; i < 50; i++) fn(i % COUNT); // warm-up
  const t0 = performance.now();
  let ok = 0;
  for (let i = 0; i < COUNT; i++) if (fn(i)) ok++;
  const us = ((performance.now() - t0) * 1000) / COUNT;
  if (ok !== COUNT) throw new Error(`${label}: ${COUNT - ok} signatures did not verify`);
  console.log(`${label.padEnd(52)} ${us.toFixed(0).padStart(6)} µs`);
  return us;
}

// Each record signed by its own key (10,000 nodes have 10,000 keys: no cache helps the first round).
const x = Array.from({ length: COUNT }, (_, i) => {
  const kp = x25519KeyPair(rnd(32));
  return { pub: kp.publicKey, sig: xeddsaSign(kp.privateKey, msg(i), rnd(64)) };
});
const e = Array.from({ length: COUNT }, (_, i) => {
  const kp = ed25519KeyPair(rnd(32));
  return { pub: kp.publicKey, sig: ed25519Sign(msg(i), kp.privateKey) };
});
console.log(`${COUNT} records, one key each`);
const xn = time('XEdDSA, @noble/curves (before)', (i) => ed25519.verify(x[i].sig, msg(i), xeddsaPublicKey(x[i].pub), { zip215: false }));
const xz = time('XEdDSA, node:crypto ed25519 (now; first sight of a key)', (i) => xeddsaVerify(x[i].pub, msg(i), x[i].sig));
const xc = time('XEdDSA, node:crypto ed25519 (now; key seen before)', (i) => xeddsaVerify(x[i].pub, msg(i), x[i].sig));
const en = time('ed25519, @noble/curves (before)', (i) => ed25519.verify(e[i].sig, msg(i), e[i].pub.bytes, { zip215: false }));
const ez = time('ed25519, node:crypto (now)', (i) => ed25519Verify(e[i].sig, msg(i), e[i].pub));
console.log(`speed-up: XEdDSA ${(xn / xz).toFixed(1)}× (${(xn / xc).toFixed(1)}× for a key seen before), ed25519 ${(en / ez).toFixed(1)}×`);
console.log(`10,000 registrations verified once: ${((xn * 10000) / 1e6).toFixed(1)} s before, ${((xz * 10000) / 1e6).toFixed(1)} s now`);
