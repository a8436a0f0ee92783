/**
 * The limiting plugins' redis and redis-cluster policies: two gateway nodes,
 * each serving from its own forked worker process, count against one Redis
 * (Debian's redis-server) or one three-master Redis Cluster, started here.
 * Then Redis down (nothing listening) and Redis silent (a listener that never
 * answers): 500 within redis_timeout, or a pass with allow_degradation.
 */
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startUpstream, type Upstream } from './helpers.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js';

let redis: RedisServer;
let cluster: RedisCluster;
let a: TestGateway;
let b: TestGateway;
let up: Upstream;
let slow: Server;
let silent: TcpServer;
const silentSockets = new Set<Socket>();

beforeAll(async () => {
  [redis, cluster, a, b, up] = await Promise.all([startRedis(), startRedisCluster(), startTestGateway({ inProcess: false }), startTestGateway({ inProcess: false }), startUpstream()]);
  slow = createServer((_req, res) => setTimeout(() => res.end('slow ok'), 800));
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  silent = createTcpServer((s) => {
    silentSockets.add(s);
    s.on('close', () => silentSockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.close(), b?.close(), up?.close(), redis?.stop(), cluster?.stop()]);
  slow?.closeAllConnections();
  await new Promise((r) => slow?.close(r));
  for (const s of silentSockets) s.destroy();
  await new Promise((r) => silent?.close(r));
});

const upstreamOf = (port: number) => ({ type: 'roundrobin', nodes: { [`127.0.0.1:${port}`]: 1 } });

/** The same route on both nodes, served by each before this returns. */
async function routeOnBoth(id: string, plugins: Record<string, unknown>, upstreamPort = up.port): Promise<void> {
  for (const gw of [a, b]) {
    const res = await gw.admin('PUT', `/apisix/admin/routes/${id}`, { uri: `/${id}`, plugins, upstream: upstreamOf(upstreamPort) });
    expect(res.status, res.text).toBeLessThan(300);
    const probe = await gw.admin('PUT', `/apisix/admin/routes/${id}-probe`, { uri: `/${id}-probe`, upstream: upstreamOf(up.port) });
    expect(probe.status).toBeLessThan(300);
    for (let i = 0; (await send(`${gw.dataUrl}/${id}-probe`)).status !== 200; i++) {
      expect(i).toBeLessThan(250);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

const redisConf = () => ({ policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port });
const clusterConf = () => ({ policy: 'redis-cluster', redis_cluster_nodes: cluster.nodes, redis_cluster_name: 'test-cluster' });

describe.each([
  ['redis', redisConf],
  ['redis-cluster', clusterConf],
])('policy %s, two gateway processes', (policy, conf) => {
  it('limit-count: one fixed window for both nodes, with the quota headers from the shared count', async () => {
    const id = `lc-${policy}`;
    await routeOnBoth(id, { 'limit-count': { count: 5, time_window: 60, rejected_code: 429, ...conf() } });
    const statuses: number[] = [];
    const remaining: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await send(`${(i % 2 === 0 ? a : b).dataUrl}/${id}`);
      statuses.push(r.status);
      remaining.push(String(r.headers['x-ratelimit-remaining']));
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(remaining).toEqual(['4', '3', '2', '1', '0', '0', '0', '0']);
    const last = await send(`${b.dataUrl}/${id}`);
    expect(Number(last.headers['x-ratelimit-reset'])).toBeGreaterThan(50);
    expect(Number(last.headers['x-ratelimit-reset'])).toBeLessThanOrEqual(60);
  });

  it('limit-req: one leaky bucket for both nodes', async () => {
    const id = `lr-${policy}`;
    await routeOnBoth(id, { 'limit-req': { rate: 0.1, burst: 2, key: 'remote_addr', nodelay: true, rejected_code: 429, ...conf() } });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await send(`${(i % 2 === 0 ? a : b).dataUrl}/${id}`)).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
  });

  it('limit-conn: one count of requests in flight for both nodes, released when they end', async () => {
    const id = `lcn-${policy}`;
    await routeOnBoth(id, { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', rejected_code: 429, ...conf() } }, (slow.address() as AddressInfo).port);
    const first = send(`${a.dataUrl}/${id}`);
    await new Promise((r) => setTimeout(r, 300));
    expect((await send(`${b.dataUrl}/${id}`)).status).toBe(429);
    expect((await send(`${a.dataUrl}/${id}`)).status).toBe(429);
    expect((await first).status).toBe(200);
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = (await send(`${b.dataUrl}/${id}`)).status;
    }
    expect(status).toBe(200);
  });
});

describe('redis down or silent', () => {
  /** Each plugin conf pointed at `host:port`, strict and degraded, with the statuses and how long they took. */
  async function against(port: number, timeout: number) {
    const at = { policy: 'redis', redis_host: '127.0.0.1', redis_port: port, redis_timeout: timeout };
    const confs: Record<string, Record<string, unknown>> = {
      'limit-count': { count: 5, time_window: 60, ...at },
      'limit-req': { rate: 1, burst: 1, key: 'remote_addr', ...at },
      'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', ...at },
    };
    const out: Array<{ name: string; strict: { status: number; body: string; ms: number }; degraded: number }> = [];
    for (const [name, c] of Object.entries(confs)) {
      const id = `down-${name}-${port}`;
      await routeOnBoth(id, { [name]: c });
      await routeOnBoth(`${id}-ok`, { [name]: { ...c, allow_degradation: true } });
      const started = performance.now();
      const strict = await send(`${a.dataUrl}/${id}`);
      out.push({ name, strict: { status: strict.status, body: strict.body, ms: performance.now() - started }, degraded: (await send(`${a.dataUrl}/${id}-ok`)).status });
    }
    return out;
  }

  it('nothing listening: 500 at once (limit-count says "failed to limit count"), 200 with allow_degradation', async () => {
    const results = await against(await freePort(), 1000);
    for (const r of results) {
      expect(r.strict.status, r.name).toBe(500);
      expect(r.degraded, r.name).toBe(200);
      expect(r.strict.ms, r.name).toBeLessThan(1500);
    }
    expect(JSON.parse(results[0]!.strict.body)).toEqual({ error_msg: 'failed to limit count' });
  });

  it('a Redis that never answers: 500 after redis_timeout, not later', async () => {
    const results = await against((silent.address() as AddressInfo).port, 400);
    // The first waited out its 400 ms; the others share its client, whose pending connection fails them sooner.
    expect(results[0]!.strict.ms).toBeGreaterThanOrEqual(390);
    for (const r of results) {
      expect(r.strict.status, r.name).toBe(500);
      expect(r.degraded, r.name).toBe(200);
      expect(r.strict.ms, r.name).toBeLessThan(2000);
    }
  });

  it('the gateway serves on once Redis is back', async () => {
    const port = await freePort();
    const id = 'back';
    await routeOnBoth(id, { 'limit-count': { count: 2, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: port } });
    expect((await send(`${a.dataUrl}/${id}`)).status).toBe(500);
    // A Redis on that port now: the client reconnects by itself.
    const { spawn } = await import('node:child_process');
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    try {
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 50));
        status = (await send(`${a.dataUrl}/${id}`)).status;
      }
      expect(status).toBe(200);
      expect((await send(`${b.dataUrl}/${id}`)).status).toBe(200);
      expect((await send(`${b.dataUrl}/${id}`)).status).toBe(503);
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      process.kill(proc.pid!, 'SIGKILL');
      await exited;
    }
  });
});
