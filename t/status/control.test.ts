/**
 * The control API (apisix.enable_control, apisix.control), through real
 * sockets: health as the checkers see it, in-process and merged over two
 * worker processes as a node goes down and comes back; the running objects
 * with their schema defaults; schemas; plugin metadata; APISIX's error
 * answers; a port already taken costs a warning, not the node.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startUpstream, type Upstream } from '../dataplane/helpers.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

interface NodeHealth {
  ip: string;
  port: number;
  status: string;
  counter: { success: number; http_failure: number; tcp_failure: number; timeout_failure: number };
}
interface Checker {
  name: string;
  type: string;
  nodes: NodeHealth[];
}

function controlUrl(gw: TestGateway): string {
  const a = gw.gateway.controlAddress;
  if (a === undefined) throw new Error('the control API is not listening');
  return `http://127.0.0.1:${a.port}`;
}

async function get(gw: TestGateway, path: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; text: string; body: unknown }> {
  const res = await fetch(controlUrl(gw) + path, { headers });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, body };
}

/** A port nothing listens on: bound, then closed. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function until<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  let last: T | undefined;
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
    last = await read();
    if (ok(last)) return last;
  }
  throw new Error(`${what}: still ${JSON.stringify(last)}`);
}

const activeChecks = {
  active: {
    type: 'http',
    http_path: '/health',
    timeout: 1,
    healthy: { interval: 1, successes: 1 },
    unhealthy: { interval: 1, http_failures: 1, tcp_failures: 1, timeouts: 1 },
  },
};

describe('served in-process', () => {
  let gw: TestGateway;
  let up: Upstream;
  let dead: number;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startUpstream();
    dead = await deadPort();
    expect((await gw.admin('PUT', '/apisix/admin/upstreams/u1', { nodes: { [`127.0.0.1:${up.port}`]: 1, [`127.0.0.1:${dead}`]: 1 }, checks: activeChecks })).status).toBe(201);
    expect((await gw.admin('PUT', '/apisix/admin/upstreams/plain', { nodes: { [`127.0.0.1:${up.port}`]: 1 } })).status).toBe(201);
    expect((await gw.admin('PUT', '/apisix/admin/routes/r1', { uri: '/hc', upstream_id: 'u1' })).status).toBe(201);
    expect(
      (
        await gw.admin('PUT', '/apisix/admin/routes/inline', {
          uri: '/inline',
          upstream: { nodes: { [`127.0.0.1:${up.port}`]: 1 }, checks: { active: { ...activeChecks.active, type: 'tcp' } } },
        })
      ).status,
    ).toBe(201);
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  test('GET /v1/healthcheck lists every checker with its nodes as the checker sees them', async () => {
    const list = (await until(
      'the dead node marked unhealthy',
      async () => (await get(gw, '/v1/healthcheck')).body as Checker[],
      (l) => l.some((c) => c.name === '/apisix/upstreams/u1' && c.nodes.some((n) => n.port === dead && n.status === 'unhealthy')),
    ))!;
    expect(list.map((c) => c.name)).toEqual(['/apisix/routes/inline', '/apisix/upstreams/u1']);
    const u1 = list.find((c) => c.name === '/apisix/upstreams/u1')!;
    expect(u1.type).toBe('http');
    const live = u1.nodes.find((n) => n.port === up.port)!;
    expect(live).toMatchObject({ ip: '127.0.0.1', status: 'healthy' });
    expect(Object.keys(live.counter).sort()).toEqual(['http_failure', 'success', 'tcp_failure', 'timeout_failure']);
    expect(list.find((c) => c.name === '/apisix/routes/inline')!.type).toBe('tcp');
  });

  test('GET /v1/healthcheck/{type}/{id}: one checker, and APISIX answers for the rest', async () => {
    const one = await get(gw, '/v1/healthcheck/upstreams/u1');
    expect(one.status).toBe(200);
    expect((one.body as Checker).name).toBe('/apisix/upstreams/u1');
    expect((one.body as Checker).nodes).toHaveLength(2);
    expect((await get(gw, '/v1/healthcheck/routes/inline')).status).toBe(200);
    expect(await get(gw, '/v1/healthcheck/upstreams/nope')).toMatchObject({ status: 404, body: { error_msg: 'upstreams[nope] not found' } });
    expect(await get(gw, '/v1/healthcheck/upstreams/plain')).toMatchObject({ status: 404, body: { error_msg: 'no checker for upstreams[plain]' } });
    expect(await get(gw, '/v1/healthcheck/consumers/x')).toMatchObject({ status: 400, body: { error_msg: 'invalid src type consumers' } });
    expect(await get(gw, '/v1/healthcheck/upstreams')).toMatchObject({ status: 404, body: { error_msg: 'missing src id for src type upstreams' } });
  });

  test('a browser gets the health table as HTML, the unhealthy node in red', async () => {
    const page = await get(gw, '/v1/healthcheck', { accept: 'text/html,application/xhtml+xml' });
    expect(page.status).toBe(200);
    expect(page.type).toContain('text/html');
    expect(page.text).toContain(`<td>127.0.0.1:${dead}</td><td>unhealthy</td>`);
    expect(page.text).toMatch(new RegExp(`<tr bgcolor="#FF0000"><td>\\d+</td><td>/apisix/upstreams/u1</td><td>http</td><td>127\\.0\\.0\\.1:${dead}</td>`));
  });

  test('/v1/routes and /v1/route/{id}: the running objects, schema defaults filled', async () => {
    const routes = (await get(gw, '/v1/routes')).body as Array<{ key: string; value: Record<string, unknown>; modifiedIndex: number; createdIndex: number }>;
    expect(routes.map((r) => r.key).sort()).toEqual(['/apisix/routes/inline', '/apisix/routes/r1']);
    const r1 = routes.find((r) => r.key === '/apisix/routes/r1')!;
    expect(r1.value).toMatchObject({ id: 'r1', uri: '/hc', upstream_id: 'u1', priority: 0, status: 1 });
    expect(r1.modifiedIndex).toBeGreaterThan(0);
    const one = await get(gw, '/v1/route/r1');
    expect(one.status).toBe(200);
    expect(one.body).toEqual(r1);
    expect(await get(gw, '/v1/route/none')).toMatchObject({ status: 404, body: { error_msg: 'route[none] not found' } });
  });

  test('/v1/upstreams, /v1/upstream/{id} and /v1/services', async () => {
    const ups = (await get(gw, '/v1/upstreams')).body as Array<{ key: string; value: Record<string, unknown> }>;
    expect(ups.map((u) => u.key).sort()).toEqual(['/apisix/upstreams/plain', '/apisix/upstreams/u1']);
    expect(ups.find((u) => u.key === '/apisix/upstreams/plain')!.value).toMatchObject({ type: 'roundrobin', scheme: 'http', pass_host: 'pass' });
    expect(((await get(gw, '/v1/upstream/u1')).body as { value: { checks: unknown } }).value.checks).toBeDefined();
    expect(await get(gw, '/v1/upstream/none')).toMatchObject({ status: 404, body: { error_msg: 'upstream[none] not found' } });
    expect(await get(gw, '/v1/services')).toMatchObject({ status: 200, body: [] });
    expect(await get(gw, '/v1/service/s')).toMatchObject({ status: 404, body: { error_msg: 'service[s] not found' } });
  });

  test('/v1/schema: the core schemas and each enabled plugin with priority and schemas', async () => {
    const { status, body } = await get(gw, '/v1/schema');
    expect(status).toBe(200);
    const schema = body as { main: Record<string, { properties?: Record<string, unknown> }>; plugins: Record<string, { priority: number; schema: unknown; consumer_schema?: unknown; type?: string }>; stream_plugins: unknown };
    expect(Object.keys(schema.main)).toEqual(expect.arrayContaining(['route', 'upstream', 'service', 'consumer', 'ssl', 'global_rule', 'plugin_config']));
    expect(schema.main.route!.properties).toHaveProperty('uri');
    expect(schema.plugins['key-auth']).toMatchObject({ priority: 2500, type: 'auth' });
    expect(schema.plugins['key-auth']!.consumer_schema).toBeDefined();
    expect(schema.plugins['limit-count']!.schema).toHaveProperty('properties.count');
    expect(schema.stream_plugins).toEqual({});
  });

  test('/v1/plugin_metadatas and /v1/plugin_metadata/{name}', async () => {
    expect(await get(gw, '/v1/plugin_metadatas')).toMatchObject({ status: 200, body: [] });
    const put = await gw.admin('PUT', '/apisix/admin/plugin_metadata/limit-count', { limit_header: 'X-Quota-Limit' });
    expect(put.status).toBeLessThan(300);
    expect(await get(gw, '/v1/plugin_metadatas')).toMatchObject({ status: 200, body: [{ id: 'limit-count', limit_header: 'X-Quota-Limit' }] });
    expect(await get(gw, '/v1/plugin_metadata/limit-count')).toMatchObject({ status: 200, body: { id: 'limit-count', limit_header: 'X-Quota-Limit' } });
    expect(await get(gw, '/v1/plugin_metadata/key-auth')).toMatchObject({ status: 404, body: { error_msg: 'plugin metadata[key-auth] not found' } });
  });

  test('an unknown path is 404, and nothing is served on the data plane under /v1', async () => {
    expect((await get(gw, '/v1/gc')).status).toBe(404);
    const res = await fetch(`${gw.dataUrl}/v1/healthcheck`);
    expect(res.status).toBe(404);
    await res.text();
  });
});

test('with two worker processes: health is gathered from both and follows a node going down and back', async () => {
  let server: Server | undefined;
  const port = await deadPort();
  const listen = (): Promise<void> =>
    new Promise((resolve) => {
      // A bare HTTP/1.1 200 for every probe.
      server = createServer((s) => {
        s.on('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'));
        s.on('error', () => undefined);
      });
      server.listen(port, '127.0.0.1', () => resolve());
    });
  await listen();
  const gw = await startTestGateway({ config: { nginx_config: { worker_processes: 2 } }, inProcess: false });
  try {
    expect((await gw.admin('PUT', '/apisix/admin/upstreams/w', { nodes: { [`127.0.0.1:${port}`]: 1 }, checks: activeChecks })).status).toBe(201);
    const status = async (): Promise<string | undefined> => {
      const r = await get(gw, '/v1/healthcheck/upstreams/w');
      if (r.status !== 200) return `HTTP ${r.status}`;
      const nodes = (r.body as Checker).nodes;
      // One entry for the node however many processes check it.
      expect(nodes).toHaveLength(1);
      return nodes[0]!.status;
    };
    expect(await until('healthy in both workers', status, (s) => s === 'healthy')).toBe('healthy');
    await new Promise<void>((r) => server!.close(() => r()));
    expect(await until('unhealthy once it is down', status, (s) => s === 'unhealthy')).toBe('unhealthy');
    await listen();
    expect(await until('healthy again once it is back', status, (s) => s === 'healthy')).toBe('healthy');
  } finally {
    await gw.close();
    server?.close();
  }
}, 60_000);

test('enable_control false serves no control API; a port already taken is a warning, and the node serves', async () => {
  const off = await startTestGateway({ config: { apisix: { enable_control: false } } });
  try {
    expect(off.gateway.controlAddress).toBeUndefined();
  } finally {
    await off.close();
  }
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as { port: number }).port;
  const gw = await startTestGateway({ config: { apisix: { control: { ip: '127.0.0.1', port } } } });
  try {
    expect(gw.gateway.controlAddress).toBeUndefined();
    expect((await gw.admin('GET', '/apisix/admin/routes')).status).toBe(200);
    const res = await fetch(`${gw.dataUrl}/nothing`);
    expect(res.status).toBe(404);
    await res.text();
  } finally {
    await gw.close();
    taken.close();
  }
});
