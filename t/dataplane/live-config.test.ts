/**
 * Live configuration: writes are served quickly, requests never fail while
 * routes change under load, and unchanged data rebuilds nothing.
 */
import { Agent, request } from 'undici';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSnapshot } from '../../src/core/snapshot/snapshot.js';
import { MemoryStore } from '../../src/core/store/memory.js';
import { send, startPlane, startUpstream, testConfig, testRegistry, type Plane, type Upstream } from './helpers.js';

describe('data plane: live config', () => {
  let plane: Plane;
  let up: Upstream;
  let upstream: Record<string, unknown>;

  beforeAll(async () => {
    up = await startUpstream((req, res) => res.end(`ok ${req.url}`), { readBody: false });
    plane = await startPlane();
    upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
  });
  afterAll(async () => {
    await plane?.close();
    await up?.close();
  });

  it('a store write is served within 50 ms', async () => {
    await plane.store.put('/apisix/routes/fresh', { uri: '/fresh', upstream });
    const t0 = performance.now();
    let status = 0;
    while (performance.now() - t0 < 50 && status !== 200) status = (await send(plane.port, { path: '/fresh' })).status;
    expect(status).toBe(200);
  });

  it('serves every request while routes and upstreams change under load', async () => {
    await plane.put('/apisix/upstreams/u1', upstream);
    await plane.put('/apisix/routes/stable', { uri: '/stable', upstream_id: 'u1' });
    const agent = new Agent({ connections: 8 });
    let stop = false;
    const failures: string[] = [];
    let ok = 0;
    const client = async () => {
      while (!stop) {
        try {
          const res = await request(`${plane.url}/stable`, { dispatcher: agent });
          await res.body.text();
          if (res.statusCode === 200) ok++;
          else failures.push(String(res.statusCode));
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const clients = Array.from({ length: 6 }, client);
    for (let i = 0; i < 40; i++) {
      await plane.store.put(`/apisix/routes/churn-${i % 7}`, { uri: `/churn/${i}`, upstream });
      await plane.store.put('/apisix/routes/stable', { uri: '/stable', upstream_id: 'u1', desc: `v${i}` });
      if (i % 10 === 0) await plane.store.put('/apisix/upstreams/u1', { ...upstream, desc: `v${i}` });
      await new Promise((r) => setTimeout(r, 5));
    }
    stop = true;
    await Promise.all(clients);
    await agent.close();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(50);
  });

  it('unchanged data does not bump the version or rebuild; an edit keeps untouched routes and upstream runtimes', async () => {
    const store = new MemoryStore();
    const snap = new ConfigSnapshot({ registry: testRegistry([]), config: testConfig(), logger: pino({ level: 'silent' }) });
    try {
      const r1 = await store.put('/apisix/routes/1', { uri: '/a', upstream });
      const r2 = await store.put('/apisix/routes/2', { uri: '/b', upstream });
      await snap.start(store);
      const first = snap.current;
      // A full replay of the same items (a re-list after a reconnect) changes nothing.
      snap.apply(
        [r1, r2].map((i) => ({ type: 'put' as const, key: i.key, value: i.value, createRevision: i.createRevision, modRevision: i.modRevision })),
        r2.modRevision,
      );
      await new Promise((r) => setImmediate(r));
      expect(snap.current).toBe(first);
      expect(snap.current.version).toBe(first.version);

      const rt2 = first.routes.get('2')!.upstream!.runtime;
      await store.put('/apisix/routes/1', { uri: '/a', upstream, desc: 'edited' });
      await store.put('/apisix/routes/2', { uri: '/b', upstream, desc: 'edited too' });
      await new Promise((r) => setTimeout(r, 20));
      const next = snap.current;
      expect(next.version).toBe(first.version + 1);
      expect(next.router).not.toBe(first.router);
      // Same inline upstream content: same runtime, so pools and health state carry over.
      expect(next.routes.get('2')!.upstream!.runtime).toBe(rt2);
    } finally {
      await snap.close();
      await store.close();
    }
  });
});
