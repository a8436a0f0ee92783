/**
 * The plugin pipeline through real HTTP: phase order, priorities, exits,
 * _meta, global rules, consumer merge, filters and the log phase. The plugins
 * are test-only definitions that record what ran into a shared trace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PluginDefinition } from '../../src/core/plugin/contract.js';
import type { ConsumerConf } from '../../src/core/model.js';
import { send, startPlane, startUpstream, type Plane, type Upstream } from './helpers.js';

const trace: string[] = [];
const logged: Array<{ route: string; status: number }> = [];

function recorder(name: string, priority: number): PluginDefinition {
  return {
    name,
    priority,
    schema: {},
    rewrite: (_c, ctx) => void trace.push(`${name}:rewrite:${ctx.route.id}`),
    access: () => void trace.push(`${name}:access`),
    before_proxy: () => void trace.push(`${name}:before_proxy`),
    header_filter: () => void trace.push(`${name}:header_filter`),
    log: () => void trace.push(`${name}:log`),
  };
}

const plugins: PluginDefinition[] = [
  recorder('p-high', 3000),
  recorder('p-mid', 2000),
  recorder('p-low', 1000),
  {
    name: 'stopper',
    priority: 1500,
    schema: {},
    access: (conf) => ({ status: (conf.status as number) ?? 403, body: conf.body ?? { message: 'stopped' }, headers: { 'x-stopped': 'yes' } }),
  },
  {
    name: 'async-stopper',
    priority: 1400,
    schema: {},
    access: async (conf) => {
      await new Promise((r) => setTimeout(r, 5));
      trace.push('async-stopper:access');
      return conf.stop ? { status: 401, body: 'no' } : undefined;
    },
  },
  {
    name: 'thrower',
    priority: 1300,
    schema: {},
    access: (conf) => {
      if (conf.when === 'access') throw new Error('boom');
    },
  },
  {
    name: 'resp-headers',
    priority: 100,
    schema: {},
    header_filter: (_c, ctx) => {
      ctx.response.headers.set('x-filtered', String(ctx.response.status));
      ctx.response.headers.remove('x-upstream-secret');
    },
  },
  {
    name: 'upper-body',
    priority: 90,
    schema: {},
    body_filter: (_c, _ctx, chunk) => Buffer.from(chunk.toString().toUpperCase()),
  },
  {
    name: 'logger',
    priority: 1,
    schema: {},
    log: (_c, ctx) => void logged.push({ route: ctx.route.id, status: ctx.response.status }),
  },
  {
    name: 'fake-auth',
    priority: 2500,
    type: 'auth',
    schema: {},
    consumers(list: readonly ConsumerConf[]) {
      fakeAuthConsumers = new Map(list.map((c) => [String((c.plugins!['fake-auth'] as { key: string }).key), c]));
    },
    rewrite: (_c, ctx) => {
      const consumer = fakeAuthConsumers.get(String(ctx.requestHeader('x-key') ?? ''));
      if (!consumer) return { status: 401, body: { message: 'Missing API key found in request' } };
      ctx.consumer = consumer;
    },
  },
  {
    name: 'set-header',
    priority: 1200,
    schema: {},
    rewrite: (conf, ctx) => {
      trace.push(`set-header:rewrite:${String(conf.value)}`);
      ctx.upstreamRequest.headers.set('x-set', String(conf.value));
    },
  },
];
let fakeAuthConsumers = new Map<string, ConsumerConf>();

describe('data plane: plugin pipeline', () => {
  let plane: Plane;
  let up: Upstream;
  let upstream: Record<string, unknown>;

  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      res.setHeader('x-upstream-secret', 's3cret');
      res.setHeader('content-type', 'text/plain');
      res.end(`hello from ${req.url}`);
    });
    plane = await startPlane({ plugins });
    upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } };
  });
  afterAll(async () => {
    await plane?.close();
    await up?.close();
  });

  it('runs phases in order, plugins by descending priority, global rules first', async () => {
    await plane.put('/apisix/global_rules/1', { plugins: { 'p-low': {} } });
    await plane.put('/apisix/routes/order', { uri: '/order', plugins: { 'p-mid': {}, 'p-high': {} }, upstream });
    trace.length = 0;
    const res = await send(plane.port, { path: '/order' });
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 20));
    expect(trace).toEqual([
      'p-low:rewrite:order',
      'p-high:rewrite:order',
      'p-mid:rewrite:order',
      'p-low:access',
      'p-high:access',
      'p-mid:access',
      'p-low:before_proxy',
      'p-high:before_proxy',
      'p-mid:before_proxy',
      'p-low:header_filter',
      'p-high:header_filter',
      'p-mid:header_filter',
      'p-low:log',
      'p-high:log',
      'p-mid:log',
    ]);
    await plane.del('/apisix/global_rules/1');
  });

  it('_meta.priority re-sorts, _meta.disable skips, _meta.filter skips when false', async () => {
    await plane.put('/apisix/routes/meta', {
      uri: '/meta',
      plugins: {
        'p-high': { _meta: { priority: 1 } },
        'p-mid': { _meta: { disable: true } },
        'p-low': { _meta: { filter: [['arg_run', '==', 'yes']] } },
      },
      upstream,
    });
    trace.length = 0;
    await send(plane.port, { path: '/meta' });
    expect(trace.filter((t) => t.endsWith(':access'))).toEqual(['p-high:access']);
    trace.length = 0;
    await send(plane.port, { path: '/meta?run=yes' });
    expect(trace.filter((t) => t.endsWith(':access'))).toEqual(['p-low:access', 'p-high:access']);
  });

  it('an exit ends the request with JSON + newline, headers, and still runs filters and log', async () => {
    await plane.put('/apisix/routes/stop', { uri: '/stop', plugins: { stopper: {}, 'resp-headers': {}, logger: {} }, upstream });
    logged.length = 0;
    const before = up.seen.length;
    const res = await send(plane.port, { path: '/stop' });
    expect(res.status).toBe(403);
    expect(res.body).toBe('{"message":"stopped"}\n');
    expect(res.headers['x-stopped']).toBe('yes');
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-filtered']).toBe('403');
    expect(up.seen.length).toBe(before);
    await new Promise((r) => setTimeout(r, 20));
    expect(logged).toEqual([{ route: 'stop', status: 403 }]);
  });

  it('_meta.error_response replaces the body of an exit >= 400', async () => {
    await plane.put('/apisix/routes/errresp', { uri: '/errresp', plugins: { stopper: { _meta: { error_response: { msg: 'custom' } } } }, upstream });
    const res = await send(plane.port, { path: '/errresp' });
    expect(res.status).toBe(403);
    expect(res.body).toBe('{"msg":"custom"}\n');
    await plane.put('/apisix/routes/errresp2', { uri: '/errresp2', plugins: { stopper: { status: 302, body: 'moved', _meta: { error_response: 'x' } } }, upstream });
    const res2 = await send(plane.port, { path: '/errresp2' });
    expect(res2.status).toBe(302);
    expect(res2.body).toBe('moved');
  });

  it('awaits async plugins and honours their exits', async () => {
    await plane.put('/apisix/routes/async', { uri: '/async', plugins: { 'async-stopper': { stop: true }, 'p-low': {} }, upstream });
    trace.length = 0;
    const res = await send(plane.port, { path: '/async' });
    expect(res.status).toBe(401);
    expect(res.body).toBe('no');
    expect(trace.filter((t) => t.endsWith(':access'))).toEqual(['async-stopper:access']);
    await plane.put('/apisix/routes/async', { uri: '/async', plugins: { 'async-stopper': {}, 'p-low': {} }, upstream });
    trace.length = 0;
    expect((await send(plane.port, { path: '/async' })).status).toBe(200);
    expect(trace.filter((t) => t.endsWith(':access'))).toEqual(['async-stopper:access', 'p-low:access']);
  });

  it('a plugin that throws gives 500 for that request only', async () => {
    await plane.put('/apisix/routes/throw', { uri: '/throw', plugins: { thrower: { when: 'access' } }, upstream });
    const res = await send(plane.port, { path: '/throw' });
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body).error_msg).toBeDefined();
    expect((await send(plane.port, { path: '/order' })).status).toBe(200);
  });

  it('header_filter edits and body_filter rewrites the upstream response', async () => {
    await plane.put('/apisix/routes/filters', { uri: '/filters', plugins: { 'resp-headers': {}, 'upper-body': {} }, upstream });
    const res = await send(plane.port, { path: '/filters' });
    expect(res.status).toBe(200);
    expect(res.headers['x-filtered']).toBe('200');
    expect(res.headers['x-upstream-secret']).toBeUndefined();
    expect(res.body).toBe('HELLO FROM /FILTERS');
  });

  it('global rules run rewrite and access before the 404', async () => {
    await plane.put('/apisix/global_rules/g', { plugins: { 'p-low': {}, stopper: { status: 418, body: { g: 1 } } } });
    trace.length = 0;
    const res = await send(plane.port, { path: '/no-such-route' });
    expect(res.status).toBe(418);
    expect(trace).toContain('p-low:rewrite:');
    await plane.put('/apisix/global_rules/g', { plugins: { 'p-low': {} } });
    trace.length = 0;
    const res2 = await send(plane.port, { path: '/no-such-route' });
    expect(res2.status).toBe(404);
    expect(trace.slice(0, 2)).toEqual(['p-low:rewrite:', 'p-low:access']);
    await plane.del('/apisix/global_rules/g');
  });

  it('merges plugin_config (route wins) and service (route wins, service is the base)', async () => {
    await plane.put('/apisix/plugin_configs/pc1', { plugins: { 'set-header': { value: 'from-pc' }, 'p-low': {} } });
    await plane.put('/apisix/services/s1', { plugins: { 'set-header': { value: 'from-service' }, 'p-mid': {} }, upstream });
    await plane.put('/apisix/routes/merge', { uri: '/merge', service_id: 's1', plugin_config_id: 'pc1' });
    trace.length = 0;
    const res = await send(plane.port, { path: '/merge' });
    expect(res.status).toBe(200);
    expect(up.seen.at(-1)!.headers['x-set']).toBe('from-pc');
    expect(trace).toContain('p-mid:access');
    expect(trace).toContain('p-low:access');
    await plane.put('/apisix/routes/merge', { uri: '/merge', service_id: 's1', plugin_config_id: 'pc1', plugins: { 'set-header': { value: 'from-route' } } });
    await send(plane.port, { path: '/merge' });
    expect(up.seen.at(-1)!.headers['x-set']).toBe('from-route');
  });

  it('missing service → 404, missing plugin_config → 503, missing upstream → 503, missing upstream_id → 502', async () => {
    await plane.put('/apisix/routes/nosvc', { uri: '/nosvc', service_id: 'ghost' });
    expect((await send(plane.port, { path: '/nosvc' })).status).toBe(404);
    await plane.put('/apisix/routes/nopc', { uri: '/nopc', plugin_config_id: 'ghost', upstream });
    expect((await send(plane.port, { path: '/nopc' })).status).toBe(503);
    await plane.put('/apisix/routes/noup', { uri: '/noup' });
    const noup = await send(plane.port, { path: '/noup' });
    expect(noup.status).toBe(503);
    expect(noup.body).toContain('missing upstream configuration in Route or Service');
    await plane.put('/apisix/routes/noupid', { uri: '/noupid', upstream_id: 'ghost' });
    expect((await send(plane.port, { path: '/noupid' })).status).toBe(502);
  });

  it('consumer plugins override the route and new ones run rewrite_in_consumer (auth plugins skipped)', async () => {
    await plane.put('/apisix/consumers/jack', { username: 'jack', plugins: { 'fake-auth': { key: 'k-jack' }, 'set-header': { value: 'from-consumer' } } });
    await plane.put('/apisix/consumers/jill', { username: 'jill', plugins: { 'fake-auth': { key: 'k-jill' } } });
    await plane.put('/apisix/routes/auth', { uri: '/auth', plugins: { 'fake-auth': {}, 'p-low': {} }, upstream });
    expect((await send(plane.port, { path: '/auth' })).status).toBe(401);
    trace.length = 0;
    expect((await send(plane.port, { path: '/auth', headers: { 'x-key': 'k-jack' } })).status).toBe(200);
    expect(up.seen.at(-1)!.headers['x-set']).toBe('from-consumer');
    expect(trace).toContain('set-header:rewrite:from-consumer');
    expect((await send(plane.port, { path: '/auth', headers: { 'x-key': 'k-jill' } })).status).toBe(200);
    expect(up.seen.at(-1)!.headers['x-set']).toBeUndefined();
  });

  it('skips an object with an invalid plugin conf and keeps serving the rest', async () => {
    await plane.put('/apisix/routes/bad', { uri: '/bad', plugins: { 'p-low': 'not-an-object' }, upstream });
    expect((await send(plane.port, { path: '/bad' })).status).toBe(404);
    expect((await send(plane.port, { path: '/order' })).status).toBe(200);
  });
});
