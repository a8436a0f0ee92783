/**
 * Deleted routes are released: nothing in the data plane (router, snapshots,
 * the carry-over of unchanged objects, upstream runtimes and keep-alive pools,
 * plugin caches, per-route counters) keeps a deleted route's compiled objects
 * alive. A probe plugin's compile() hands back an object per route and keeps
 * only a WeakRef to it; the route's compiled plugin chain is what holds it, so
 * if anything still reaches a deleted route, its probe survives a full garbage
 * collection. The routes carry what a real one does (limit-count's counters,
 * an inline upstream of their own, proxy-rewrite) and serve requests before
 * they go. A route left in place is the control: its probe must survive, or
 * the check proves nothing.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPluginGateway, type PluginGateway } from 'portico/testing';
import { pluginDir, type PluginDir } from '../plugins/external/fixtures.js';

const PROBE = `import { definePlugin } from 'portico/plugin';

const refs = ((globalThis as Record<string, unknown>).__routeProbes ??= new Map()) as Map<string, WeakRef<object>>;

export default definePlugin({
  name: 'release-probe',
  priority: 1,
  schema: { type: 'object', properties: { tag: { type: 'string' } }, required: ['tag'] },
  compile(conf: { tag: string }) {
    const compiled = { tag: conf.tag, filler: new Array(64).fill(conf.tag) };
    refs.set(conf.tag, new WeakRef(compiled));
    return compiled;
  },
  access(c: { tag: string }, ctx) {
    ctx.upstreamRequest.headers.set('x-probe', c.tag);
  },
});
`;

const probes = (): Map<string, WeakRef<object>> => ((globalThis as Record<string, unknown>).__routeProbes ??= new Map()) as Map<string, WeakRef<object>>;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Full collections, each in a later task (a WeakRef read in a job keeps its target until the job ends). */
async function collectUntil(done: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    await new Promise((r) => setTimeout(r, 50));
    gc();
    await new Promise((r) => setImmediate(r));
    if (done() || Date.now() > until) return;
  }
}

const ROUTES = 200;

describe('deleted routes are released', () => {
  let plugins: PluginDir;
  let gw: PluginGateway;

  beforeAll(async () => {
    plugins = pluginDir({ 'release-probe.ts': PROBE });
    gw = await startPluginGateway({ pluginDirs: [plugins.dir], plugins: ['release-probe'] });
  });
  afterAll(async () => {
    await gw?.close();
    plugins?.close();
  });

  it(`${ROUTES} routes with plugins, counters and upstreams of their own: served, deleted, then nothing keeps them`, async () => {
    const route = (tag: string, i: number) => ({
      uri: `/r/${tag}`,
      plugins: {
        'release-probe': { tag },
        'limit-count': { count: 1000, time_window: 60, key: 'remote_addr', rejected_code: 429 },
        'proxy-rewrite': { headers: { set: { 'x-route': tag } } },
      },
      // An upstream per route (its own runtime and keep-alive pool); the weight makes each one differ.
      upstream: { type: 'roundrobin', nodes: { [gw.upstreamNode]: 1 + (i % 50) } },
    });
    const put = async (id: string, body: unknown) => expect((await gw.admin('PUT', `/apisix/admin/routes/${id}`, body)).status).toBeLessThan(300);
    await put('kept', route('kept', 0));
    for (let i = 0; i < ROUTES; i++) await put(`r${i}`, route(`r${i}`, i));
    // Every route serves (its chain and upstream runtime are built and used), a few of them many times.
    for (let i = 0; i < ROUTES; i++) {
      const res = await gw.request(`/r/r${i}`);
      expect(res.status, `r${i}`).toBe(200);
      expect(res.json<{ headers: Record<string, string> }>().headers['x-probe']).toBe(`r${i}`);
    }
    for (let k = 0; k < 100; k++) expect((await gw.request(`/r/r${k % 10}`)).status).toBe(200);
    expect((await gw.request('/r/kept')).status).toBe(200);
    expect(probes().size).toBeGreaterThanOrEqual(ROUTES + 1);

    for (let i = 0; i < ROUTES; i++) expect((await gw.admin('DELETE', `/apisix/admin/routes/r${i}`)).status).toBe(200);
    const last = `/r/r${ROUTES - 1}`;
    for (let i = 0; i < 100 && (await gw.request(last)).status !== 404; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await gw.request(last)).status).toBe(404);

    const alive = (): string[] => [...probes()].filter(([tag, ref]) => tag !== 'kept' && ref.deref() !== undefined).map(([tag]) => tag);
    await collectUntil(() => alive().length === 0);
    expect(alive()).toEqual([]);
    // The control: the route still configured keeps its compiled objects, so the probe does detect what is held.
    expect(probes().get('kept')?.deref()).toBeDefined();
    expect((await gw.request('/r/kept')).status).toBe(200);
  }, 60_000);
});
