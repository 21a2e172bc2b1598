// scripts/deps.sh pins wireguard-go to trixie and nothing else (issue #21): with its preferences file, apt offers
// a newer wireguard-go from a trixie suite and never a newer anything-else from it. Checked offline against a
// local "trixie" repository (an index only) that carries a newer wireguard-go and a newer bash, with apt's lists,
// cache and sources redirected to a temporary directory: the host's apt state is only read (dpkg's status).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

const PIN = '/etc/apt/preferences.d/zmesh-wireguard-go';

function stanza(pkg: string, version: string): string {
  return [`Package: ${pkg}`, `Version: ${version}`, 'Architecture: amd64', 'Maintainer: test <test@example.org>', `Filename: pool/${pkg}_${version}_amd64.deb`, 'Size: 1', `SHA256: ${'0'.repeat(64)}`, `Description: ${pkg} (test index)`, ''].join('\n');
}

/** A local suite `codename` whose index offers these packages. */
function repo(root: string, suite: string, pkgs: [string, string][]): void {
  const dir = join(root, 'dists', suite, 'main', 'binary-amd64');
  mkdirSync(dir, { recursive: true });
  const packages = pkgs.map(([p, v]) => stanza(p, v)).join('\n');
  writeFileSync(join(dir, 'Packages'), packages);
  const sha = createHash('sha256').update(packages).digest('hex');
  writeFileSync(
    join(root, 'dists', suite, 'Release'),
    ['Origin: Debian', 'Label: Debian', `Suite: ${suite}`, `Codename: ${suite}`, 'Architectures: amd64', 'Components: main', `Date: ${new Date().toUTCString()}`, 'SHA256:', ` ${sha} ${Buffer.byteLength(packages)} main/binary-amd64/Packages`, ''].join('\n'),
  );
}

test('apt pin: upgrades take wireguard-go from trixie (and trixie-security), nothing else', { skip: !existsSync(PIN) && `${PIN} absent (scripts/deps.sh pins only with the batched build)` }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'zmesh-apt-'));
  try {
    const installed = (await execa('dpkg-query', ['-W', '-f=${Version}', 'wireguard-go'])).stdout;
    repo(join(tmp, 'repo'), 'trixie', [
      ['wireguard-go', '0.0.20991231-1'],
      ['bash', '99.0-1'],
    ]);
    repo(join(tmp, 'repo'), 'trixie-security', [['libc6', '99.0-1']]);
    repo(join(tmp, 'repo'), 'bookworm-elsewhere', [['wireguard-go', '0.0.20991231-2']]);
    mkdirSync(join(tmp, 'prefs'));
    writeFileSync(join(tmp, 'prefs', 'zmesh-wireguard-go'), readFileSync(PIN));
    writeFileSync(join(tmp, 'sources.list'), ['trixie', 'trixie-security', 'bookworm-elsewhere'].map((s) => `deb [trusted=yes] file:${join(tmp, 'repo')} ${s} main`).join('\n') + '\n');
    for (const d of ['lists/partial', 'cache/archives/partial']) mkdirSync(join(tmp, d), { recursive: true });
    const opts = [
      '-o', `Dir::Etc::SourceList=${join(tmp, 'sources.list')}`,
      '-o', 'Dir::Etc::SourceParts=/nonexistent',
      '-o', `Dir::Etc::PreferencesParts=${join(tmp, 'prefs')}`,
      '-o', 'Dir::Etc::Preferences=/nonexistent',
      '-o', `Dir::State::Lists=${join(tmp, 'lists')}`,
      '-o', `Dir::Cache=${join(tmp, 'cache')}`,
      '-o', 'Debug::NoLocking=1',
      '-o', 'APT::Get::List-Cleanup=false',
    ];
    await execa('apt-get', [...opts, 'update', '-qq']);
    const sim = (await execa('apt-get', [...opts, '-s', 'dist-upgrade'], { env: { LC_ALL: 'C' } })).stdout;
    const inst = sim.split('\n').filter((l) => l.startsWith('Inst '));
    // The trixie build of wireguard-go is taken; bash and libc6 from trixie are not, and a newer wireguard-go from
    // another suite (not pinned) loses to the pinned one.
    assert.deepEqual(inst.map((l) => l.split(' ')[1]), ['wireguard-go'], sim);
    assert.match(inst[0], new RegExp(`^Inst wireguard-go \\[${installed.replace(/[.+]/g, '\\$&')}\\] \\(0\\.0\\.20991231-1 `), inst[0]);
    const policy = (await execa('apt-cache', [...opts, 'policy', 'bash', 'libc6'], { env: { LC_ALL: 'C' } })).stdout;
    assert.doesNotMatch(policy, /Candidate: 99\.0-1/, policy);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
