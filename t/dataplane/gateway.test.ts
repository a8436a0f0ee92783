/**
 * The data plane inside a whole gateway (Admin API + embedded store + real
 * plugins): admin writes are served, encrypted plugin fields are decrypted
 * for the data plane, and the path-confusion corpus (`//`, encoded dots and
 * slashes, `;` params, encoded prefixes) can never
 * reach a protected route's upstream path by another route.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { send, startUpstream, type Upstream } from './helpers.js';

/** Sends a request line exactly as written (no client-side path cleanup). */
function rawGet(port: number, target: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(`GET ${target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n`));
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('end', () => resolve(Number(data.slice(9, 12))));
    s.on('error', reject);
  });
}

describe('data plane in the gateway', () => {
  let gw: TestGateway;
  let up: Upstream;

  beforeAll(async () => {
    up = await startUpstream((req, res) => res.end(`ok ${req.url}`), { readBody: false });
    gw = await startTestGateway({
      config: { apisix: { data_encryption: { enable_encrypt_fields: true, keyring: ['0123456789abcdef'] } } },
    });
    const put = async (path: string, body: unknown) => {
      const r = await gw.admin('PUT', path, body);
      expect(r.status, r.text).toBeLessThan(300);
    };
    await put('/apisix/admin/upstreams/1', { type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } });
    await put('/apisix/admin/routes/pub', { uri: '/pub/*', upstream_id: '1' });
    await put('/apisix/admin/routes/priv', { uri: '/priv/*', upstream_id: '1', plugins: { 'ip-restriction': { blacklist: ['127.0.0.0/8'] } } });
    await put('/apisix/admin/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-secret-key' } } });
    await put('/apisix/admin/routes/auth', { uri: '/auth', upstream_id: '1', plugins: { 'key-auth': {} } });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  async function eventually(path: string, headers: Record<string, string>, status: number): Promise<void> {
    const until = Date.now() + 2000;
    let last = 0;
    while (Date.now() < until) {
      last = (await send(gw.dataPort, { path, headers })).status;
      if (last === status) return;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(last).toBe(status);
  }

  it('serves routes written through the Admin API', async () => {
    await eventually('/pub/x', {}, 200);
    await eventually('/priv/x', {}, 403);
  });

  it('decrypts encrypted consumer credentials (key-auth key stored encrypted)', async () => {
    const stored = await gw.gateway.store.get('/apisix/consumers/jack');
    const storedKey = (stored?.value as { plugins: { 'key-auth': { key: string } } }).plugins['key-auth'].key;
    expect(storedKey).not.toBe('jack-secret-key');
    await eventually('/auth', { apikey: 'jack-secret-key' }, 200);
    expect((await send(gw.dataPort, { path: '/auth', headers: { apikey: storedKey } })).status).toBe(401);
    expect((await send(gw.dataPort, { path: '/auth' })).status).toBe(401);
  });

  it('no path-confusion form reaches /priv on the upstream without the priv route', async () => {
    await eventually('/pub/x', {}, 200);
    const corpus = [
      '/pub/../priv/x',
      '/pub/..%2fpriv/x',
      '/pub/..%2Fpriv/x',
      '/pub/%2e%2e/priv/x',
      '/pub/%2E%2E%2Fpriv/x',
      '//priv/x',
      '/%70riv/x',
      '/%70%72%69%76/x',
      '/pub/./../priv/x',
      '/pub/x/../../priv/x',
      '/pub/..;/priv/x',
      '/pub/%252e%252e/priv/x',
      '/pub/..\\priv/x',
      '/priv/./x',
      '/priv//x',
    ];
    const before = up.seen.length;
    for (const target of corpus) {
      const status = await rawGet(gw.dataPort, target);
      expect([200, 400, 403, 404], target).toContain(status);
    }
    const reached = up.seen.slice(before).map((s) => decodeURIComponent(s.url));
    for (const url of reached) {
      // Whatever got through was routed by /pub/* and is still under /pub/ as the upstream parses it.
      expect(url.startsWith('/pub/'), url).toBe(true);
      expect(url.split('/').includes('..'), url).toBe(false);
    }
  });
});
