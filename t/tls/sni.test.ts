/**
 * TLS termination from the `ssls` objects, through real sockets: curl with
 * --resolve and --cacert, Node TLS clients, openssl s_client. SNI picks the
 * certificate (exact before wildcard, unknown or disabled refused), RSA and
 * ECDSA pairs sit in one object, a swap is seen by the next handshake while
 * an open connection keeps working, and fallback_sni serves clients without SNI.
 */
import { execFile, spawn } from 'node:child_process';
import { connect, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { makePki, type TestPki } from '../helpers/certs.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../dataplane/helpers.js';

const run = promisify(execFile);

let pki: TestPki;
let gw: TestGateway;
let up: Upstream;
let tlsPort: number;

beforeAll(async () => {
  pki = makePki();
  up = await startUpstream();
  gw = await startTestGateway({
    config: { apisix: { ssl: { enable: true, listen: [{ ip: '127.0.0.1', port: 0, enable_http2: false }], fallback_sni: 'fallback.test' } } },
  });
  tlsPort = gw.gateway.tlsAddresses[0]!.port;
  const put = await gw.admin('PUT', '/apisix/admin/routes/r1', { uri: '/*', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } } });
  expect(put.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
  pki?.remove();
});

async function putSsl(id: string, body: Record<string, unknown>): Promise<void> {
  const res = await gw.admin('PUT', `/apisix/admin/ssls/${id}`, body);
  expect(res.status, res.text).toBeLessThan(300);
}

/** The certificate the listener presents for `servername` (undefined: no SNI), or the handshake's error. */
function handshake(servername: string | undefined, opts: { sigalgs?: string; keep?: boolean } = {}): Promise<{ cn?: string; alg?: string; error?: string; socket?: TLSSocket }> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port: tlsPort,
      servername,
      ca: pki.ca.cert,
      sigalgs: opts.sigalgs,
      // Without SNI the name to check is the address: the chain is still verified against the test CA.
      ...(servername === undefined ? { checkServerIdentity: () => undefined } : {}),
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      const out = { cn: cert?.subject.replace(/^.*CN=/s, ''), alg: cert?.publicKey.asymmetricKeyType };
      if (opts.keep) resolve({ ...out, socket });
      else {
        socket.end();
        resolve(out);
      }
    });
    socket.once('error', (err) => resolve({ error: err.message }));
  });
}

/** Waits until `check` holds (config changes reach the data plane within a compile tick). */
async function eventually(check: () => Promise<boolean>, ms = 1000): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('certificates by SNI', () => {
  test('exact names before the wildcard, one label per wildcard, unknown and disabled names refused', async () => {
    const exact = pki.server(['api.example.test']);
    const wild = pki.server(['*.example.test']);
    const off = pki.server(['off.test']);
    await putSsl('exact', { cert: exact.cert, key: exact.key, snis: ['api.example.test'] });
    await putSsl('wild', { cert: wild.cert, key: wild.key, sni: '*.example.test' });
    await putSsl('off', { cert: off.cert, key: off.key, sni: 'off.test', status: 0 });
    await eventually(async () => (await handshake('api.example.test')).cn === 'api.example.test');

    expect((await handshake('API.Example.Test')).cn).toBe('api.example.test');
    expect((await handshake('www.example.test')).cn).toBe('*.example.test');
    expect((await handshake('a.b.example.test')).error).toBeDefined();
    expect((await handshake('example.test')).error).toBeDefined();
    expect((await handshake('unknown.test')).error).toBeDefined();
    expect((await handshake('off.test')).error).toBeDefined();

    // curl, resolving the names to the listener, verifying against the test CA.
    const { stdout } = await run('curl', ['-sS', '--cacert', pki.ca.certFile, '--resolve', `www.example.test:${tlsPort}:127.0.0.1`, `https://www.example.test:${tlsPort}/hello`, '-w', '\\n%{http_code}']);
    const [body, code] = stdout.split('\n');
    expect(code).toBe('200');
    const echoed = JSON.parse(body!) as { url: string; headers: Record<string, string> };
    expect(echoed.url).toBe('/hello');
    expect(echoed.headers['x-forwarded-proto']).toBe('https');
    const refused = await run('curl', ['-sS', '--cacert', pki.ca.certFile, '--resolve', `nope.test:${tlsPort}:127.0.0.1`, `https://nope.test:${tlsPort}/`]).catch((e: { code: number }) => e);
    expect((refused as { code: number }).code).toBe(35); // CURLE_SSL_CONNECT_ERROR
  });

  test('an RSA and an ECDSA certificate in one object: ECDSA for clients that accept it; an RSA-only object for RSA clients', async () => {
    const rsa = pki.server(['dual.test'], 'rsa');
    const ec = pki.server(['dual.test'], 'ecdsa');
    await putSsl('dual', { cert: rsa.cert, key: rsa.key, certs: [ec.cert], keys: [ec.key], sni: 'dual.test' });
    await eventually(async () => (await handshake('dual.test')).cn === 'dual.test');
    expect((await handshake('dual.test', { sigalgs: 'ECDSA+SHA256' })).alg).toBe('ec');
    expect((await handshake('dual.test')).alg).toBe('ec');
    // An object with an RSA pair alone serves a TLS 1.2 client that signs with RSA only (openssl s_client).
    const rsaOnly = pki.server(['rsa.test'], 'rsa');
    await putSsl('rsa', { cert: rsaOnly.cert, key: rsaOnly.key, sni: 'rsa.test' });
    await eventually(async () => (await handshake('rsa.test')).cn === 'rsa.test');
    const { stdout } = await run('sh', ['-c', `openssl s_client -connect 127.0.0.1:${tlsPort} -servername rsa.test -tls1_2 -sigalgs RSA+SHA256 </dev/null 2>/dev/null | openssl x509 -noout -text | grep 'Public Key Algorithm'`]);
    expect(stdout).toMatch(/rsaEncryption/);
  });

  test('no SNI: the fallback_sni object answers; without it the handshake fails', async () => {
    // Even for a client that checks nothing.
    const loose = await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: tlsPort, rejectUnauthorized: false });
      s.on('secureConnect', () => resolve('connected'));
      s.on('error', () => resolve('failed'));
    });
    expect(loose).toBe('failed');
    const fb = pki.server(['fallback.test']);
    await putSsl('fb', { cert: fb.cert, key: fb.key, sni: 'fallback.test' });
    await eventually(async () => (await handshake(undefined)).cn === 'fallback.test');
  });

  test('a swapped certificate is what the next openssl s_client handshake sees within a second; an open connection keeps working', async () => {
    const first = pki.server(['swap.test']);
    await putSsl('swap', { cert: first.cert, key: first.key, sni: 'swap.test' });
    await eventually(async () => (await handshake('swap.test')).cn === 'swap.test');
    const serialOf = async (): Promise<string> => {
      const out = await sClient('swap.test');
      return /serial=([0-9A-F]+)/.exec(out)?.[1] ?? '';
    };
    const before = await serialOf();
    expect(before).toMatch(/^[0-9A-F]+$/);

    // A keep-alive HTTP/1.1 connection opened with the first certificate.
    const open = await handshake('swap.test', { keep: true });
    const socket = open.socket!;
    const ask = (): Promise<string> =>
      new Promise((resolve, reject) => {
        socket.once('data', (d: Buffer) => resolve(d.toString()));
        socket.once('error', reject);
        socket.write('GET /still HTTP/1.1\r\nhost: swap.test\r\n\r\n');
      });
    expect(await ask()).toMatch(/^HTTP\/1\.1 200/);

    const second = pki.server(['swap.test']);
    await putSsl('swap', { cert: second.cert, key: second.key, sni: 'swap.test' });
    const took = await eventually(async () => (await serialOf()) !== before, 1000);
    expect(took).toBeLessThan(1000);
    expect(await ask()).toMatch(/^HTTP\/1\.1 200/);
    socket.end();

    // Deleted: the name is no longer served.
    expect((await gw.admin('DELETE', '/apisix/admin/ssls/swap')).status).toBe(200);
    await eventually(async () => (await handshake('swap.test')).error !== undefined);
  });
});

/** `openssl s_client -servername … -showcerts`, printing the served certificate's serial. */
function sClient(servername: string): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn('sh', ['-c', `openssl s_client -connect 127.0.0.1:${tlsPort} -servername ${servername} </dev/null 2>/dev/null | openssl x509 -noout -serial`]);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', () => resolve(out));
  });
}
