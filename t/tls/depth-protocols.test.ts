/**
 * Two per-object TLS settings through real handshakes with curl: an `ssls`
 * object's `client.depth` (nginx's ssl_verify_depth: how many CA certificates
 * may stand above the client's own) and its own `ssl_protocols`, narrower
 * than the listener's.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { makePki, type Pem, type TestPki } from '../helpers/certs.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../dataplane/helpers.js';

const run = promisify(execFile);
let pki: TestPki;
let gw: TestGateway;
let up: Upstream;
let port: number;
let direct: Pem;
let viaIntermediate: Pem;

beforeAll(async () => {
  pki = makePki();
  up = await startUpstream();
  gw = await startTestGateway({ config: { apisix: { ssl: { enable: true, listen: [{ ip: '127.0.0.1', port: 0, enable_http2: false }] } } } });
  port = gw.gateway.tlsAddresses[0]!.port;
  const intermediate = pki.intermediate('Portico Tests Intermediate');
  direct = pki.client('direct');
  viaIntermediate = pki.client('nested', intermediate);
  // The object trusts both CAs, so the server can build the nested client's chain: client, intermediate, root.
  const ca = pki.ca.cert + intermediate.cert;
  const put = async (id: string, names: string[], extra: object) => {
    const server = pki.server(names);
    expect((await gw.admin('PUT', `/apisix/admin/ssls/${id}`, { cert: server.cert, key: server.key, snis: names, ...extra })).status).toBe(201);
  };
  await put('shallow', ['shallow.test'], { client: { ca } }); // depth 1, the default
  await put('deep', ['deep.test'], { client: { ca, depth: 2 } });
  await put('tls13', ['tls13.test'], { ssl_protocols: ['TLSv1.3'] });
  await gw.admin('PUT', '/apisix/admin/routes/any', { uri: '/x', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } } });
  await new Promise((r) => setTimeout(r, 150));
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
  pki?.remove();
});

async function curl(host: string, extra: string[] = [], client?: Pem): Promise<string> {
  const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', pki.ca.certFile, '--resolve', `${host}:${port}:127.0.0.1`, ...extra];
  if (client) args.push('--cert', client.certFile, '--key', client.keyFile);
  try {
    return (await run('curl', [...args, `https://${host}:${port}/x`])).stdout;
  } catch (err) {
    return `curl exit ${(err as { code: number }).code}`;
  }
}

test('client.depth: a chain with one CA more than the depth allows is refused; the same chain passes a deeper object', async () => {
  expect(await curl('shallow.test', [], direct)).toBe('200');
  expect(await curl('shallow.test', [], viaIntermediate)).toMatch(/^curl exit \d+$/);
  expect(await curl('deep.test', [], viaIntermediate)).toBe('200');
  expect(await curl('deep.test', [], direct)).toBe('200');
});

test("an object's ssl_protocols: TLS 1.2 is refused where the object allows only TLS 1.3, and allowed elsewhere", async () => {
  expect(await curl('tls13.test', ['--tlsv1.3'])).toBe('200');
  expect(await curl('tls13.test', ['--tlsv1.2', '--tls-max', '1.2'])).toMatch(/^curl exit \d+$/);
  // The listener itself allows TLS 1.2 (apisix.ssl.ssl_protocols): another object's handshake succeeds with it.
  expect(await curl('shallow.test', ['--tlsv1.2', '--tls-max', '1.2'], direct)).toBe('200');
});
