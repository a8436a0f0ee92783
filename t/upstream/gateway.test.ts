/**
 * The upstream runtime seen from a client of the whole gateway: TLS
 * verification by default (a self-signed upstream is a 502 unless
 * tls.verify is false), keep-alive reuse (N requests over at most pool-size
 * upstream sockets) and health checks taking nodes out and back.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startServer, waitFor, type TestServer } from './support.js';

let gw: TestGateway;
const servers: TestServer[] = [];
/** The gateway's warn-level log lines, as JSON. */
const logLines: Array<Record<string, unknown>> = [];
beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  gw = await startTestGateway({ logger: pino({ level: 'warn' }, sink) });
});
afterAll(async () => {
  await gw?.close();
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function route(id: string, upstream: Record<string, unknown>): Promise<void> {
  const res = await gw.admin('PUT', `/apisix/admin/routes/${id}`, { uri: `/${id}/*`, upstream });
  expect(res.status, res.text).toBeLessThan(300);
}

async function get(path: string): Promise<{ status: number; node: string | null }> {
  const res = await fetch(`${gw.dataUrl}${path}`);
  await res.arrayBuffer();
  return { status: res.status, node: res.headers.get('x-node') };
}

/** Config changes reach the data plane asynchronously. */
async function until(path: string, ok: (r: { status: number }) => boolean): Promise<void> {
  const end = Date.now() + 5000;
  for (;;) {
    const r = await get(path);
    if (ok(r)) return;
    if (Date.now() > end) throw new Error(`${path} still answers ${r.status}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe('through the gateway', () => {
  it('refuses a self-signed https upstream by default and accepts it with tls.verify=false', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-gw-tls-'));
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', join(dir, 'k'), '-out', join(dir, 'c'), '-days', '1', '-subj', '/CN=localhost',
      ], { stdio: 'ignore' });
      let hits = 0;
      const server = https.createServer({ cert: readFileSync(join(dir, 'c')), key: readFileSync(join(dir, 'k')) }, (_req, res) => {
        hits++;
        res.end('secret');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      try {
        await route('tls-default', { scheme: 'https', nodes: { [`127.0.0.1:${port}`]: 1 } });
        await until('/tls-default/x', (r) => r.status !== 404);
        expect((await get('/tls-default/x')).status).toBe(502);
        expect(hits).toBe(0);
        // The 502's log line says why and how to opt out, since APISIX would have accepted this upstream.
        const failed = logLines.filter((l) => l.msg === 'proxy: upstream failed' && l.upstream === `127.0.0.1:${port}`);
        expect(failed.length, JSON.stringify(logLines)).toBeGreaterThan(0);
        expect(failed[0]!.hint).toContain('tls.verify: false');

        await route('tls-off', { scheme: 'https', tls: { verify: false }, nodes: { [`127.0.0.1:${port}`]: 1 } });
        await until('/tls-off/x', (r) => r.status !== 404);
        expect((await get('/tls-off/x')).status).toBe(200);
        expect(hits).toBeGreaterThan(0);
        // A failure that is not the certificate's gets no such hint.
        await route('tls-refused', { scheme: 'https', nodes: { '127.0.0.1:9': 1 } });
        await until('/tls-refused/x', (r) => r.status !== 404);
        expect((await get('/tls-refused/x')).status).toBe(502);
        const refused = logLines.filter((l) => l.msg === 'proxy: upstream failed' && l.upstream === '127.0.0.1:9');
        expect(refused.length).toBeGreaterThan(0);
        expect(refused[0]!.hint).toBeUndefined();
      } finally {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('N client requests reach the upstream over at most keepalive_pool.size sockets', async () => {
    const s = await startServer('ka');
    servers.push(s);
    await route('ka', { nodes: { [s.key]: 1 }, keepalive_pool: { size: 3 } });
    await until('/ka/x', (r) => r.status === 200);
    const before = s.requests;
    for (let batch = 0; batch < 4; batch++) {
      const results = await Promise.all(Array.from({ length: 10 }, () => get('/ka/x')));
      for (const r of results) expect(r.status).toBe(200);
    }
    expect(s.requests - before).toBe(40);
    expect(s.connections).toBeLessThanOrEqual(3);
  });

  it('passive checks take a failing node out; active checks bring it back', async () => {
    const [good, bad] = await Promise.all([startServer('good'), startServer('bad')]);
    servers.push(good, bad);
    await route('hc', {
      nodes: { [good.key]: 1, [bad.key]: 1 },
      checks: {
        active: { http_path: '/health', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 2 } },
        passive: { unhealthy: { http_statuses: [500], http_failures: 2 } },
      },
    });
    await until('/hc/x', (r) => r.status === 200);
    bad.status = 500;
    // Every client request to `bad` gets its 500 relayed until the second one marks it down.
    const seen: string[] = [];
    for (let i = 0; i < 12; i++) seen.push(`${(await get('/hc/x')).node}`);
    const tail = seen.slice(-6);
    expect(tail).toEqual(Array(6).fill('good'));
    expect(seen.filter((n) => n === 'bad').length).toBeLessThanOrEqual(3);

    bad.status = 200;
    await waitFor(() => bad.last?.url === '/health', 4000);
    const end = Date.now() + 4000;
    let back = false;
    while (!back && Date.now() < end) {
      back = (await get('/hc/x')).node === 'bad';
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(back).toBe(true);
  });
});
