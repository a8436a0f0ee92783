/**
 * Portico's bounds on what one stored object may hold (src/schema/limits.ts,
 * `MAX_EXPR_RULES` in src/core/match/expr.ts): through the real Admin API,
 * each bounded field at its limit is stored, one beyond is refused with 400
 * naming the field and the limit, and nothing is stored (404, or the old
 * value). An object beyond a bound that reaches the data plane without the
 * Admin API (written straight into etcd) is skipped with one warning naming
 * its key and the field, and the gateway goes on serving the rest.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../dataplane/helpers.js';

const range = <T>(n: number, f: (k: number) => T): T[] => Array.from({ length: n }, (_, k) => f(k));
const ip = (k: number) => `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`;
const NODES = { '127.0.0.1:1980': 1 };

interface Case {
  name: string;
  resource: 'routes' | 'services' | 'upstreams';
  /** The body with `n` entries (or characters) in the bounded field. */
  body(n: number): Record<string, unknown>;
  limit: number;
  /** What the 400's error_msg must say beyond the limit. */
  message: string;
}

const CASES: Case[] = [
  {
    name: 'route uris',
    resource: 'routes',
    body: (n) => ({ uris: range(n, (k) => `/u/${k}`), upstream: { nodes: NODES } }),
    limit: 4096,
    message: 'invalid configuration: property "uris" validation failed: expect array to have at most 4096 items',
  },
  {
    name: 'one uri in uris',
    resource: 'routes',
    body: (n) => ({ uris: ['/' + 'a'.repeat(n - 1)], upstream: { nodes: NODES } }),
    limit: 4096,
    message: 'invalid configuration: property "uris" validation failed: failed to validate item 1: string too long, expected at most 4096, got 4097',
  },
  {
    name: 'route hosts',
    resource: 'routes',
    body: (n) => ({ uri: '/h', hosts: range(n, (k) => `h${k}.example.com`), upstream: { nodes: NODES } }),
    limit: 4096,
    message: 'invalid configuration: property "hosts" validation failed: expect array to have at most 4096 items',
  },
  {
    name: 'route host',
    resource: 'routes',
    body: (n) => ({ uri: '/h', host: 'h'.repeat(n), upstream: { nodes: NODES } }),
    limit: 256,
    message: 'invalid configuration: property "host" validation failed: string too long, expected at most 256, got 257',
  },
  {
    name: 'route remote_addrs',
    resource: 'routes',
    body: (n) => ({ uri: '/r', remote_addrs: range(n, ip), upstream: { nodes: NODES } }),
    limit: 4096,
    message: 'invalid configuration: property "remote_addrs" validation failed: expect array to have at most 4096 items',
  },
  {
    name: 'route vars',
    resource: 'routes',
    body: (n) => ({ uri: '/v', vars: range(n, (k) => ['arg_k', '==', String(k)]), upstream: { nodes: NODES } }),
    limit: 1024,
    message: "failed to validate the 'vars' expression: expression has more than 1024 rules and logical groups (Portico's bound)",
  },
  {
    // A group counts as a rule: the bound cannot be dodged by nesting.
    name: 'route vars in one OR group',
    resource: 'routes',
    body: (n) => ({ uri: '/v', vars: [['OR', ...range(n - 1, (k) => ['arg_k', '==', String(k)])]], upstream: { nodes: NODES } }),
    limit: 1024,
    message: "failed to validate the 'vars' expression: expression has more than 1024 rules and logical groups (Portico's bound)",
  },
  {
    name: "a route's inline upstream nodes (hash form)",
    resource: 'routes',
    body: (n) => ({ uri: '/n', upstream: { nodes: Object.fromEntries(range(n, (k) => [`${ip(k)}:80`, 1])) } }),
    limit: 4096,
    message: 'invalid configuration: property "upstream" validation failed: property "nodes" validation failed: expect object to have at most 4096 properties',
  },
  {
    name: 'upstream nodes (array form)',
    resource: 'upstreams',
    body: (n) => ({ nodes: range(n, (k) => ({ host: ip(k), port: 80, weight: 1 })) }),
    limit: 4096,
    message: 'invalid configuration: property "nodes" validation failed: expect array to have at most 4096 items',
  },
  {
    // Checked before the full schema: inside it, nodes' two forms would hide the limit behind "matches none".
    name: "a node's host (array form)",
    resource: 'upstreams',
    body: (n) => ({ nodes: [{ host: 'n'.repeat(n), port: 80, weight: 1 }] }),
    limit: 256,
    message: 'invalid configuration: property "nodes" validation failed: failed to validate item 1: property "host" validation failed: string too long, expected at most 256, got 257',
  },
  {
    name: 'upstream upstream_host',
    resource: 'upstreams',
    body: (n) => ({ nodes: NODES, pass_host: 'rewrite', upstream_host: 'u'.repeat(n) }),
    limit: 256,
    message: 'invalid configuration: property "upstream_host" validation failed: string too long, expected at most 256, got 257',
  },
  {
    name: 'service hosts',
    resource: 'services',
    body: (n) => ({ hosts: range(n, (k) => `s${k}.example.com`), upstream: { nodes: NODES } }),
    limit: 4096,
    message: 'invalid configuration: property "hosts" validation failed: expect array to have at most 4096 items',
  },
  {
    name: 'ip-restriction whitelist',
    resource: 'routes',
    body: (n) => ({ uri: '/w', plugins: { 'ip-restriction': { whitelist: range(n, ip) } }, upstream: { nodes: NODES } }),
    limit: 16384,
    message: 'failed to check the configuration of plugin ip-restriction err: property "whitelist" validation failed: expect array to have at most 16384 items',
  },
];

describe('Admin API: bounded fields', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  test.each(CASES)('$name: $limit is stored, one more is refused with 400 naming the field and the limit', async (c) => {
    const id = c.name.replace(/[^a-z0-9]+/gi, '-');
    const ok = await gw.admin('PUT', `/apisix/admin/${c.resource}/${id}-ok`, c.body(c.limit));
    expect(ok.status, ok.text).toBeLessThan(300);

    const over = await gw.admin('PUT', `/apisix/admin/${c.resource}/${id}-over`, c.body(c.limit + 1));
    expect(over.status).toBe(400);
    expect(over.body).toEqual({ error_msg: c.message });
    expect((await gw.admin('GET', `/apisix/admin/${c.resource}/${id}-over`)).status).toBe(404);

    // POST (generated id) is checked the same way and stores nothing either.
    const listed = (await gw.admin('GET', `/apisix/admin/${c.resource}`)).body.total;
    const posted = await gw.admin('POST', `/apisix/admin/${c.resource}`, c.body(c.limit + 1));
    expect(posted.status).toBe(400);
    expect((await gw.admin('GET', `/apisix/admin/${c.resource}`)).body.total).toBe(listed);
  });

  test('an update beyond a bound (PUT or PATCH) leaves the stored value as it was', async () => {
    const first = await gw.admin('PUT', '/apisix/admin/routes/kept', { uris: ['/kept'], upstream: { nodes: NODES } });
    expect(first.status).toBe(201);
    const before = await gw.admin('GET', '/apisix/admin/routes/kept');
    const put = await gw.admin('PUT', '/apisix/admin/routes/kept', { uris: range(4097, (k) => `/k/${k}`), upstream: { nodes: NODES } });
    expect(put.status).toBe(400);
    expect(put.body.error_msg).toContain('property "uris" validation failed: expect array to have at most 4096 items');
    const patch = await gw.admin('PATCH', '/apisix/admin/routes/kept/uris', range(4097, (k) => `/k/${k}`));
    expect(patch.status).toBe(400);
    expect(patch.body.error_msg).toContain('at most 4096 items');
    const got = await gw.admin('GET', '/apisix/admin/routes/kept');
    expect(got.body.value.uris).toEqual(['/kept']);
    expect(got.body).toEqual(before.body);
  });
});

describe('data plane: an object beyond a bound written straight into etcd', () => {
  let etcd: EtcdServer;
  let gw: TestGateway;
  let up: Upstream;
  const lines: Array<{ msg: string; key?: string; err?: unknown }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });

  beforeAll(async () => {
    etcd = await startEtcd();
    up = await startUpstream();
    gw = await startTestGateway({
      config: { deployment: { config_provider: 'etcd', etcd: { host: [etcd.endpoint], prefix: '/bounds', timeout: 5 } } },
      logger: pino({ level: 'warn' }, sink),
    });
  }, 60_000);
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await etcd?.stop();
  });

  async function status(path: string): Promise<number> {
    const res = await fetch(gw.dataUrl + path);
    await res.arrayBuffer();
    return res.status;
  }

  test('is skipped with one warning naming the key and the field; the others are served', async () => {
    const { Etcd3 } = await import('etcd3');
    const client = new Etcd3({ hosts: [etcd.endpoint] });
    try {
      const nodes = { [`127.0.0.1:${up.port}`]: 1 };
      await client.put('/bounds/routes/big').value(JSON.stringify({ uris: ['/big', ...range(4096, (k) => `/big/${k}`)], upstream: { nodes } }));
      await client.put('/bounds/upstreams/wide').value(JSON.stringify({ nodes: { ...nodes, ...Object.fromEntries(range(4096, (k) => [`${ip(k)}:80`, 1])) } }));
      await client.put('/bounds/routes/wide').value(JSON.stringify({ uri: '/wide', upstream_id: 'wide' }));
      await client.put('/bounds/routes/small').value(JSON.stringify({ uri: '/small', upstream: { nodes } }));
      for (const end = Date.now() + 10_000; (await status('/small')) !== 200 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
      expect(await status('/small')).toBe(200);
      expect(await status('/big')).toBe(404);
      // The route is there; the upstream it names was left out.
      expect(await status('/wide')).not.toBe(200);

      const skipped = lines.filter((l) => l.msg === 'config: skipping invalid object');
      expect(skipped.filter((l) => String(l.key).endsWith('/routes/big'))).toEqual([
        expect.objectContaining({ err: 'property "uris" validation failed: expect array to have at most 4096 items' }),
      ]);
      expect(skipped.filter((l) => String(l.key).endsWith('/upstreams/wide'))).toEqual([
        expect.objectContaining({ err: 'property "nodes" validation failed: expect object to have at most 4096 properties' }),
      ]);

      // Brought within the bound, the same key is served.
      await client.put('/bounds/routes/big').value(JSON.stringify({ uris: ['/big', ...range(4095, (k) => `/big/${k}`)], upstream: { nodes } }));
      for (const end = Date.now() + 10_000; (await status('/big')) !== 200 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
      expect(await status('/big')).toBe(200);
    } finally {
      client.close();
    }
  }, 60_000);
});
