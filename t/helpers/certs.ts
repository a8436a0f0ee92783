/**
 * Test certificates made with Debian's openssl in a temporary directory: a CA,
 * server certificates (RSA or ECDSA) for given names signed by it, and client
 * certificates for mTLS (by the CA, or by an intermediate under it).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pem {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

export interface TestPki {
  dir: string;
  ca: Pem;
  /** A server certificate for `names` (the first is the CN), RSA unless asked otherwise. */
  server(names: string[], kind?: 'rsa' | 'ecdsa'): Pem;
  /** A client certificate signed by `issuer` (the CA by default). */
  client(cn: string, issuer?: Pem): Pem;
  /** An intermediate CA under the root. */
  intermediate(cn: string): Pem;
  /** Another, unrelated CA (its certificates must not verify). */
  otherCa(): Pem;
  remove(): void;
}

let serial = 0;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function keyArgs(kind: 'rsa' | 'ecdsa'): string[] {
  return kind === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
}

function read(dir: string, name: string): Pem {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}

function makeCa(dir: string, name: string, cn: string): Pem {
  openssl(['req', '-x509', ...keyArgs('rsa'), '-nodes', '-days', '2', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.crt`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return read(dir, name);
}

function sign(dir: string, name: string, subj: string, issuer: Pem, ext: string, kind: 'rsa' | 'ecdsa'): Pem {
  openssl(['req', ...keyArgs(kind), '-nodes', '-subj', subj, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', issuer.certFile, '-CAkey', issuer.keyFile, '-set_serial', String(1000 + ++serial),
    '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
  return read(dir, name);
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'portico-pki-'));
  const ca = makeCa(dir, 'ca', 'Portico Test CA');
  let n = 0;
  return {
    dir,
    ca,
    server(names, kind = 'rsa') {
      const san = names.map((d) => `DNS:${d}`).join(',');
      return sign(dir, `server${++n}`, `/CN=${names[0]}`, ca, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`, kind);
    },
    client(cn, issuer = ca) {
      return sign(dir, `client${++n}`, `/O=Portico Tests/CN=${cn}`, issuer, 'extendedKeyUsage=clientAuth\n', 'rsa');
    },
    intermediate(cn) {
      return sign(dir, `inter${++n}`, `/CN=${cn}`, ca, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n', 'rsa');
    },
    otherCa() {
      return makeCa(dir, `other${++n}`, 'Someone Else');
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
