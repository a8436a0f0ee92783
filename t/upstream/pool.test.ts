import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { selfSigned } from '../helpers/tls.js';
import { createUpstreamRuntime, livePoolCount, type UpstreamRuntime } from '../../src/core/upstream/index.js';
import type { UpstreamConf } from '../../src/core/model.js';
import { fakeCtx, startServer, type TestServer } from './support.js';

const runtimes: UpstreamRuntime[] = [];
const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function rt(conf: UpstreamConf, key = '/apisix/upstreams/pool'): UpstreamRuntime {
  const r = createUpstreamRuntime(conf, key);
  runtimes.push(r);
  return r;
}

/**
 * One proxied attempt: pick, send over the node's pool, report, release.
 * undici frees the connection one tick after the body ends; a request issued
 * in that same tick would open a second socket, which real client traffic
 * (separated by network round trips) never does, so yield once.
 */
async function roundTrip(r: UpstreamRuntime): Promise<number> {
  const t = r.pick(fakeCtx())!;
  try {
    const res = await t.pool.request({ path: '/', method: 'GET' });
    await res.body.text();
    r.report(t, { status: res.statusCode });
    return res.statusCode;
  } finally {
    r.release(t);
    await new Promise((res) => setImmediate(res));
  }
}

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

describe('keep-alive pools', () => {
  it('reuses connections: N concurrent requests open at most keepalive_pool.size sockets', async () => {
    const s = await startServer();
    servers.push(s);
    const r = rt({ nodes: { [s.key]: 1 }, keepalive_pool: { size: 4 } });
    for (let batch = 0; batch < 5; batch++) await Promise.all(Array.from({ length: 10 }, () => roundTrip(r)));
    expect(s.requests).toBe(50);
    expect(s.connections).toBeGreaterThan(0);
    expect(s.connections).toBeLessThanOrEqual(4);
  });

  it('sequential requests share one socket', async () => {
    const s = await startServer();
    servers.push(s);
    const r = rt({ nodes: { [s.key]: 1 } });
    for (let i = 0; i < 20; i++) expect(await roundTrip(r)).toBe(200);
    expect(s.connections).toBe(1);
  });

  it('opens a new socket after keepalive_pool.requests requests', async () => {
    const s = await startServer();
    servers.push(s);
    const r = rt({ nodes: { [s.key]: 1 }, keepalive_pool: { requests: 3 } });
    for (let i = 0; i < 12; i++) await roundTrip(r);
    expect(s.requests).toBe(12);
    expect(s.connections).toBe(4);
  });

  it('drops idle sockets after idle_timeout; 0 disables reuse', async () => {
    const s = await startServer();
    servers.push(s);
    const r = rt({ nodes: { [s.key]: 1 }, keepalive_pool: { idle_timeout: 0.05 } });
    await roundTrip(r);
    await roundTrip(r);
    expect(s.connections).toBe(1);
    await sleep(200);
    await roundTrip(r);
    expect(s.connections).toBe(2);

    const z = await startServer();
    servers.push(z);
    const none = rt({ nodes: { [z.key]: 1 }, keepalive_pool: { idle_timeout: 0 } }, '/apisix/upstreams/nokeepalive');
    for (let i = 0; i < 4; i++) await roundTrip(none);
    expect(z.connections).toBe(4);
    expect(z.last!.headers.connection).toBe('close');

    const once = await startServer();
    servers.push(once);
    const single = rt({ nodes: { [once.key]: 1 }, keepalive_pool: { requests: 1 } }, '/apisix/upstreams/onerequest');
    for (let i = 0; i < 3; i++) await roundTrip(single);
    expect(once.connections).toBe(3);
  });

  it('keeps a node’s pool (and its warm socket) across config versions, and closes it with the last runtime', async () => {
    const [a, b] = await Promise.all([startServer('a'), startServer('b')]);
    servers.push(a, b);
    const base = livePoolCount();
    const v1 = rt({ nodes: { [a.key]: 1 } });
    await roundTrip(v1);
    // The data plane builds the new version first, then closes the old one.
    const v2 = rt({ nodes: { [a.key]: 1, [b.key]: 1 }, retries: 2 });
    // a's warm pool is adopted; b has none until a request goes to it (pools are made on first use).
    expect(livePoolCount()).toBe(base + 1);
    await v1.close();
    const ta = v2.pick(fakeCtx(), new Set([b.key]))!;
    v2.release(ta);
    for (let i = 0; i < 3; i++) {
      const t = v2.pick(fakeCtx(), new Set([b.key]))!;
      const res = await t.pool.request({ path: '/', method: 'GET' });
      await res.body.text();
      v2.release(t);
      await new Promise((res) => setImmediate(res));
    }
    expect(a.requests).toBe(4);
    expect(a.connections).toBe(1);

    // Different keep-alive settings: a different pool.
    const v3 = rt({ nodes: { [a.key]: 1 }, keepalive_pool: { size: 2 } });
    expect(v3.pick(fakeCtx())!.pool).not.toBe(ta.pool);
    await v2.close();
    await v3.close();
    expect(livePoolCount()).toBe(base);
    await expect(ta.pool.request({ path: '/', method: 'GET' })).rejects.toThrow();
  });

  it('makes a node’s pool on first use only, and lets it go when the node leaves the config', async () => {
    const s = await startServer();
    servers.push(s);
    const base = livePoolCount();
    // 5,000 nodes nobody sends a request to cost no pool at all.
    const nodes: Record<string, number> = { [s.key]: 1 };
    for (let i = 0; i < 5000; i++) nodes[`127.0.0.1:${10000 + i}`] = 0;
    const big = rt({ nodes }, '/apisix/upstreams/big');
    expect(livePoolCount()).toBe(base);
    expect(await roundTrip(big)).toBe(200);
    expect(livePoolCount()).toBe(base + 1);
    // The next version, without that node: once the old version is closed, its pool is gone.
    const next = rt({ nodes: { '127.0.0.1:9': 1 } }, '/apisix/upstreams/big');
    await big.close();
    expect(livePoolCount()).toBe(base);
    await next.close();
    expect(livePoolCount()).toBe(base);
  });

  it('uses the scheme’s default port for nodes without one, and brackets IPv6', () => {
    const r = rt({ scheme: 'https', nodes: [{ host: 'example.com', weight: 1 }, { host: '::1', port: 8443, weight: 1 }] });
    const keys = new Set([r.pick(fakeCtx())!.key, r.pick(fakeCtx())!.key]);
    expect(keys).toEqual(new Set(['example.com:443', '[::1]:8443']));
    const h = rt({ nodes: { 'example.com': 1, '[::1]': 1 } }, '/apisix/upstreams/ports');
    const t1 = h.pick(fakeCtx())!;
    const t2 = h.pick(fakeCtx())!;
    expect(new Set([t1.key, t2.key])).toEqual(new Set(['example.com:80', '[::1]:80']));
    expect(new Set([t1.port, t2.port])).toEqual(new Set([80]));
  });
});

describe('upstream TLS', () => {
  let dir: string;
  let server: https.Server;
  let port: number;
  let clientCert: string;
  let clientKey: string;
  const peerCerts: Array<boolean> = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-upstream-tls-'));
    const serverPair = selfSigned(dir, 'server', 'localhost');
    const clientPair = selfSigned(dir, 'client', 'portico-client');
    clientCert = clientPair.cert;
    clientKey = clientPair.key;
    server = https.createServer(
      // Asks for a client certificate but does not insist, so the test can see whether one was sent.
      { cert: serverPair.cert, key: serverPair.key, requestCert: true, rejectUnauthorized: false, ca: [clientPair.cert] },
      (req, res) => {
        peerCerts.push((req.socket as TLSSocket).authorized);
        res.end('secure');
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies upstream certificates by default: a self-signed upstream is refused', async () => {
    const r = rt({ scheme: 'https', nodes: { [`127.0.0.1:${port}`]: 1 } }, '/apisix/upstreams/tls-default');
    const t = r.pick(fakeCtx())!;
    const err = await t.pool.request({ path: '/', method: 'GET' }).then(
      () => undefined,
      (e: { code?: string }) => e,
    );
    r.release(t);
    expect(err?.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
    expect(peerCerts.length).toBe(0);
  });

  it('tls.verify=false accepts it, and client_cert/client_key are presented for mTLS', async () => {
    const plain = rt({ scheme: 'https', tls: { verify: false }, nodes: { [`127.0.0.1:${port}`]: 1 } }, '/apisix/upstreams/tls-off');
    expect(await roundTrip(plain)).toBe(200);
    expect(peerCerts.at(-1)).toBe(false);

    const mtls = rt(
      { scheme: 'https', tls: { verify: false, client_cert: clientCert, client_key: clientKey }, nodes: { [`127.0.0.1:${port}`]: 1 } },
      '/apisix/upstreams/tls-mtls',
    );
    expect(mtls.pick(fakeCtx())!.pool).not.toBe(plain.pick(fakeCtx())!.pool);
    expect(await roundTrip(mtls)).toBe(200);
    expect(peerCerts.at(-1)).toBe(true);
  });
});
