// A small certificate authority made with openssl, for the labs' etcd (and the tests'): a CA, server
// certificates with IP/DNS subject alternative names, client certificates whose CN is the etcd user name
// (etcd --client-cert-auth takes the user from the CN: root, zmesh-controller, zmesh-node-<id>). ECDSA P-256.
// Private keys are written 0600; existing files are kept (idempotent), so a lab that comes up again keeps them.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

export class Pki {
  constructor(
    readonly dir: string,
    readonly caName = 'ca',
    readonly days = 30,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!existsSync(this.ca)) {
      openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', String(days), '-subj', `/CN=${caName}`, '-keyout', `${caName}.key`, '-out', `${caName}.crt`], dir);
      chmodSync(join(dir, `${caName}.key`), 0o600);
    }
  }

  get ca(): string {
    return join(this.dir, `${this.caName}.crt`);
  }

  /**
   * A leaf certificate `name`.crt/.key signed by this CA (made once). `cn` defaults to `name`; `san` lists
   * IP addresses and DNS names for a server; `usage` its extended key usage.
   */
  leaf(name: string, o: { cn?: string; san?: string[]; usage?: 'server' | 'client' | 'both' } = {}): CertFiles {
    const files = { cert: join(this.dir, `${name}.crt`), key: join(this.dir, `${name}.key`) };
    if (existsSync(files.cert) && existsSync(files.key)) return files;
    const usage = { server: 'serverAuth', client: 'clientAuth', both: 'serverAuth,clientAuth' }[o.usage ?? 'client'];
    const san = o.san?.length ? `subjectAltName=${o.san.map((s) => (/^[\d.]+$|:/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',')}\n` : '';
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${o.cn ?? name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`], this.dir);
    chmodSync(files.key, 0o600);
    writeFileSync(join(this.dir, `${name}.ext`), `${san}extendedKeyUsage=${usage}\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${this.caName}.crt`, '-CAkey', `${this.caName}.key`, '-CAcreateserial', '-days', String(this.days), '-extfile', `${name}.ext`, '-out', `${name}.crt`], this.dir);
    rmSync(join(this.dir, `${name}.csr`), { force: true });
    rmSync(join(this.dir, `${name}.ext`), { force: true });
    return files;
  }
}
