/**
 * mTLS from an `ssls` object's `client`: the object's CA verifies the client,
 * only handshakes for that object are asked for a certificate, and
 * `skip_mtls_uri_regex` turns a refused handshake into APISIX's 400 for the
 * paths it does not list. `ssl_client_*` variables reach plugins (read here
 * through a route `vars` match).
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
let alice: Pem;
let stranger: Pem;

beforeAll(async () => {
  pki = makePki();
  up = await startUpstream();
  gw = await startTestGateway({ config: { apisix: { ssl: { enable: true, listen: [{ ip: '127.0.0.1', port: 0, enable_http2: false }] } } } });
  port = gw.gateway.tlsAddresses[0]!.port;
  alice = pki.client('alice');
  stranger = pki.client('mallory', pki.otherCa());
  const strict = pki.server(['strict.test']);
  const lenient = pki.server(['lenient.test']);
  const open = pki.server(['open.test']);
  const put = async (id: string, body: object) => expect((await gw.admin('PUT', `/apisix/admin/ssls/${id}`, body)).status).toBe(201);
  await put('strict', { cert: strict.cert, key: strict.key, sni: 'strict.test', client: { ca: pki.ca.cert } });
  await put('lenient', { cert: lenient.cert, key: lenient.key, sni: 'lenient.test', client: { ca: pki.ca.cert, skip_mtls_uri_regex: ['^/public/.*'] } });
  await put('open', { cert: open.cert, key: open.key, sni: 'open.test' });
  const upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } };
  // Only a verified alice reaches this route: the variables plugins read, seen by the router.
  await gw.admin('PUT', '/apisix/admin/routes/alice', {
    uri: '/whoami',
    priority: 1,
    vars: [['ssl_client_verify', '==', 'SUCCESS'], ['ssl_client_s_dn', '==', 'CN=alice,O=Portico Tests'], ['ssl_server_name', '==', 'strict.test']],
    upstream,
  });
  await gw.admin('PUT', '/apisix/admin/routes/any', { uris: ['/anything', '/public/*', '/private', '/x'], upstream });
  await new Promise((r) => setTimeout(r, 150));
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
  pki?.remove();
});

async function curl(host: string, path: string, client?: Pem): Promise<string> {
  const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', pki.ca.certFile, '--resolve', `${host}:${port}:127.0.0.1`];
  if (client) args.push('--cert', client.certFile, '--key', client.keyFile);
  try {
    return (await run('curl', [...args, `https://${host}:${port}${path}`])).stdout;
  } catch (err) {
    return `curl exit ${(err as { code: number }).code}`;
  }
}

test('a client certificate from the object CA is accepted, and plugins see ssl_client_* and ssl_server_name', async () => {
  expect(await curl('strict.test', '/anything', alice)).toBe('200');
  expect(await curl('strict.test', '/whoami', alice)).toBe('200');
  expect(up.seen.at(-1)?.url).toBe('/whoami');
  // Verified too, but under another server name: the route's vars do not match.
  expect(await curl('lenient.test', '/whoami', alice)).toBe('404');
});

// 35: the handshake failed (no certificate); 52/56: with TLS 1.3 the client's Finished goes first, so a
// certificate that does not verify shows as the connection closing before any answer.
test('no certificate, or one from another CA: the connection is refused before any request', async () => {
  expect(await curl('strict.test', '/anything')).toMatch(/^curl exit (35|52|56)$/);
  expect(await curl('strict.test', '/anything', stranger)).toMatch(/^curl exit (35|52|56)$/);
});

test('skip_mtls_uri_regex: listed paths are open, others answer 400 without a valid certificate', async () => {
  expect(await curl('lenient.test', '/public/page')).toBe('200');
  expect(await curl('lenient.test', '/private')).toBe('400');
  expect(await curl('lenient.test', '/private', stranger)).toBe('400');
  expect(await curl('lenient.test', '/private', alice)).toBe('200');
});

test('only objects with client.ca ask for a certificate (openssl s_client sees the CertificateRequest)', async () => {
  const caNames = async (sni: string) =>
    (await run('sh', ['-c', `openssl s_client -connect 127.0.0.1:${port} -servername ${sni} -tls1_2 </dev/null 2>/dev/null | grep -i 'client certificate CA names' || true`])).stdout;
  expect(await caNames('strict.test')).toMatch(/Acceptable client certificate CA names/);
  expect(await caNames('open.test')).toMatch(/No client certificate CA names sent/);
  expect(await curl('open.test', '/x')).toBe('200');
});
