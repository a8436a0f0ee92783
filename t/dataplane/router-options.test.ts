/**
 * APISIX's router options in config.yaml, through whole gateways: routes
 * written over the Admin API, requests sent with node:http (the path goes on
 * the wire as written), and the upstream that answered tells which route
 * matched and which path it received.
 *
 * - apisix.router.http: radixtree_host_uri ranks routes with hosts before
 *   host-less ones; radixtree_uri and radixtree_uri_with_parameter rank by path
 *   and priority, and check a route's hosts as one more condition; only
 *   radixtree_uri reads `:name` literally (Portico's default keeps parameters).
 * - apisix.delete_uri_tail_slash: `/foo/` routes as `/foo`, the upstream gets `/foo/`.
 * - apisix.normalize_uri_like_servlet: `;params` are stripped for routing and
 *   kept for the upstream; `/..;/`-style targets are refused with 400.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type DeepPartial } from '../../src/core/config/file.js';
import type { PorticoConfig } from '../../src/core/config/types.js';
import { putRoutes, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { send, startUpstream, type Upstream } from './helpers.js';

const names = ['host', 'plain', 'param', 'foo', 'root', 'guarded', 'public'] as const;
type Name = (typeof names)[number];
const ups = {} as Record<Name, Upstream>;
const upstreamOf = (name: Name) => ({ type: 'roundrobin', nodes: { [`127.0.0.1:${ups[name].port}`]: 1 } });

/** Routes that tell the routers apart: the same path with and without hosts, and a parameter path. */
const routerRoutes = (): Array<[string, Record<string, unknown>]> => [
  ['host', { uri: '/x', hosts: ['a.example.com'], upstream: upstreamOf('host') }],
  ['plain', { uri: '/x', priority: 10, upstream: upstreamOf('plain') }],
  ['host-only', { uri: '/only', host: 'a.example.com', upstream: upstreamOf('host') }],
  ['param', { uri: '/user/:name', upstream: upstreamOf('param') }],
];

/** Routes for the URI options: an exact route, a route an attacker wants, and open prefixes. */
const uriRoutes = (): Array<[string, Record<string, unknown>]> => [
  ['foo', { uris: ['/foo', '/foo/bar'], upstream: upstreamOf('foo') }],
  ['root', { uri: '/', upstream: upstreamOf('root') }],
  ['guarded', { uri: '/admin', plugins: { 'ip-restriction': { blacklist: ['127.0.0.0/8'] } }, upstream: upstreamOf('guarded') }],
  ['public', { uri: '/public/*', upstream: upstreamOf('public') }],
];

const gws: Record<'hostUri' | 'uri' | 'uriParam' | 'tailSlash' | 'servlet', TestGateway | undefined> = {
  hostUri: undefined,
  uri: undefined,
  uriParam: undefined,
  tailSlash: undefined,
  servlet: undefined,
};

async function gateway(config: DeepPartial<PorticoConfig>, routes: Array<[string, Record<string, unknown>]>, probe: string): Promise<TestGateway> {
  const gw = await startTestGateway({ config });
  await putRoutes(gw, routes);
  // Routes reach the data plane through the store's watch: wait until the last one answers.
  const deadline = Date.now() + 5000;
  while ((await send(gw.dataPort, { path: probe })).status === 404 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return gw;
}

beforeAll(async () => {
  for (const n of names) {
    ups[n] = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ upstream: n, url: req.url }));
    });
  }
  const both = [...routerRoutes(), ...uriRoutes()];
  const router = (http: PorticoConfig['apisix']['router']['http']) => ({ apisix: { router: { http } } });
  [gws.hostUri, gws.uri, gws.uriParam, gws.tailSlash, gws.servlet] = await Promise.all([
    gateway(router('radixtree_host_uri'), both, '/public/probe'),
    gateway(router('radixtree_uri'), routerRoutes(), '/user/:name'),
    gateway(router('radixtree_uri_with_parameter'), routerRoutes(), '/user/probe'),
    gateway({ apisix: { delete_uri_tail_slash: true } }, uriRoutes(), '/public/probe'),
    gateway({ apisix: { normalize_uri_like_servlet: true } }, uriRoutes(), '/public/probe'),
  ]);
});

afterAll(async () => {
  for (const gw of Object.values(gws)) await gw?.close();
  for (const u of Object.values(ups)) await u?.close();
});

interface Answer {
  status: number;
  upstream?: string;
  url?: string;
}

async function get(gw: TestGateway | undefined, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await send(gw!.dataPort, { path, headers });
  if (res.status !== 200) return { status: res.status };
  const body = JSON.parse(res.body) as { upstream: string; url: string };
  return { status: 200, upstream: body.upstream, url: body.url };
}

const upstreamTotal = () => Object.values(ups).reduce((n, u) => n + u.seen.length, 0);

describe('apisix.router.http', () => {
  it('radixtree_host_uri: a route with hosts wins over a host-less one, whatever the priorities', async () => {
    expect(await get(gws.hostUri, '/x', { host: 'a.example.com' })).toMatchObject({ upstream: 'host' });
    expect(await get(gws.hostUri, '/x', { host: 'b.example.com' })).toMatchObject({ upstream: 'plain' });
    expect((await get(gws.hostUri, '/only', { host: 'b.example.com' })).status).toBe(404);
    // Portico's default keeps `:name` parameters on.
    expect(await get(gws.hostUri, '/user/bob')).toMatchObject({ upstream: 'param' });
  });

  it('radixtree_uri: priority decides between the two /x routes; hosts are still checked; `:` is literal', async () => {
    expect(await get(gws.uri, '/x', { host: 'a.example.com' })).toMatchObject({ upstream: 'plain' });
    expect(await get(gws.uri, '/x', { host: 'b.example.com' })).toMatchObject({ upstream: 'plain' });
    expect(await get(gws.uri, '/only', { host: 'a.example.com' })).toMatchObject({ upstream: 'host' });
    expect((await get(gws.uri, '/only', { host: 'b.example.com' })).status).toBe(404);
    expect((await get(gws.uri, '/user/bob')).status).toBe(404);
    expect(await get(gws.uri, '/user/:name')).toMatchObject({ upstream: 'param', url: '/user/:name' });
  });

  it('radixtree_uri_with_parameter: as radixtree_uri, and /user/:name captures one segment', async () => {
    expect(await get(gws.uriParam, '/x', { host: 'a.example.com' })).toMatchObject({ upstream: 'plain' });
    expect((await get(gws.uriParam, '/only', { host: 'b.example.com' })).status).toBe(404);
    expect(await get(gws.uriParam, '/user/bob')).toMatchObject({ upstream: 'param', url: '/user/bob' });
    expect((await get(gws.uriParam, '/user/bob/more')).status).toBe(404);
    expect((await get(gws.uriParam, '/user/')).status).toBe(404);
  });
});

describe('apisix.delete_uri_tail_slash', () => {
  it('off (the default): /foo/ does not match a /foo route', async () => {
    expect((await get(gws.hostUri, '/foo/')).status).toBe(404);
  });

  it('on: /foo/ matches /foo and the upstream still receives /foo/, as APISIX forwards it', async () => {
    expect(await get(gws.tailSlash, '/foo/')).toEqual({ status: 200, upstream: 'foo', url: '/foo/' });
    expect(await get(gws.tailSlash, '/foo/bar/?a=1')).toEqual({ status: 200, upstream: 'foo', url: '/foo/bar/?a=1' });
    expect(await get(gws.tailSlash, '/foo//')).toEqual({ status: 200, upstream: 'foo', url: '/foo/' });
    expect(await get(gws.tailSlash, '/foo')).toEqual({ status: 200, upstream: 'foo', url: '/foo' });
  });

  it('on: the root keeps its slash; any other path loses its last one, so /public/ misses /public/*', async () => {
    expect(await get(gws.tailSlash, '/')).toEqual({ status: 200, upstream: 'root', url: '/' });
    expect(await get(gws.tailSlash, '/public/')).toMatchObject({ status: 404 });
  });

  it('on: an upgrade request is matched the same way', async () => {
    // A route without enable_websocket proxies an upgrade as a plain request.
    const res = await send(gws.tailSlash!.dataPort, { path: '/foo/', headers: { connection: 'Upgrade', upgrade: 'websocket' } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ upstream: 'foo', url: '/foo/' });
  });
});

describe('apisix.normalize_uri_like_servlet', () => {
  it('off (the default): `;` is an ordinary character, so /admin;x is not the /admin route', async () => {
    expect((await get(gws.hostUri, '/foo;jsessionid=1/bar')).status).toBe(404);
    expect(await get(gws.hostUri, '/public/..;/admin')).toMatchObject({ upstream: 'public' });
  });

  it('on: ;params are stripped for routing and kept for the upstream', async () => {
    expect(await get(gws.servlet, '/foo;jsessionid=1/bar')).toEqual({ status: 200, upstream: 'foo', url: '/foo;jsessionid=1/bar' });
    expect(await get(gws.servlet, '/foo/bar;v=2?q=1')).toEqual({ status: 200, upstream: 'foo', url: '/foo/bar;v=2?q=1' });
    expect(await get(gws.servlet, '/foo;a=1;b=2')).toEqual({ status: 200, upstream: 'foo', url: '/foo;a=1;b=2' });
    // No `;`: nothing changes (the tail slash stays).
    expect((await get(gws.servlet, '/foo/bar/')).status).toBe(404);
  });

  it('on: a ;param cannot carry a request past a guarded route', async () => {
    // Every spelling of /admin with parameters reaches the /admin route, whose ip-restriction refuses us.
    for (const path of ['/admin', '/admin;jsessionid=1', '/admin%3Bx', '/admin;', '//admin;x']) {
      expect((await send(gws.servlet!.dataPort, { path })).status, path).toBe(403);
    }
    expect(ups.guarded.seen).toHaveLength(0);
  });

  it('on: targets a servlet container would resolve above the routed prefix are refused with 400', async () => {
    const before = upstreamTotal();
    for (const path of [
      '/public/..;/admin',
      '/public/..;jsessionid=1/admin',
      '/public/.;x/admin',
      '/public/;x/admin',
      '/public/..%3B/admin',
      '/public/%252e%252e;/admin',
      '/public/%252E;/admin',
    ]) {
      const res = await send(gws.servlet!.dataPort, { path });
      expect(res.status, path).toBe(400);
    }
    expect(upstreamTotal()).toBe(before);
  });

  it('on: an upgrade request is normalised the same way', async () => {
    const headers = { connection: 'Upgrade', upgrade: 'websocket' };
    const ok = await send(gws.servlet!.dataPort, { path: '/foo;s=1/bar', headers });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ upstream: 'foo', url: '/foo;s=1/bar' });
    expect((await send(gws.servlet!.dataPort, { path: '/public/..;/admin', headers })).status).toBe(400);
  });
});

describe('config validation', () => {
  it('an unknown apisix.router.http stops start-up, naming the key and the allowed values', () => {
    const overrides = { apisix: { router: { http: 'radixtree_hosts' } } } as unknown as DeepPartial<PorticoConfig>;
    expect(() => loadConfig({ overrides, env: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ overrides, env: {} })).toThrow(
      /"apisix\.router\.http" .*radixtree_host_uri, radixtree_uri, radixtree_uri_with_parameter/,
    );
  });

  it('the same from a config file, and a wrong type for the URI options', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portico-router-conf-'));
    try {
      const file = join(dir, 'config.yaml');
      writeFileSync(file, 'apisix:\n  router:\n    http: radixtree_sni\n');
      expect(() => loadConfig({ path: file, env: {} })).toThrow(/config\.yaml: "apisix\.router\.http" .*radixtree_uri_with_parameter/);
      writeFileSync(file, 'apisix:\n  delete_uri_tail_slash: "yes"\n');
      expect(() => loadConfig({ path: file, env: {} })).toThrow(/"apisix\.delete_uri_tail_slash" must be boolean/);
      writeFileSync(file, 'apisix:\n  normalize_uri_like_servlet: 1\n');
      expect(() => loadConfig({ path: file, env: {} })).toThrow(/"apisix\.normalize_uri_like_servlet" must be boolean/);
      writeFileSync(file, 'apisix:\n  router:\n    http: radixtree_uri\n  delete_uri_tail_slash: true\n');
      const conf = loadConfig({ path: file, env: {} }).apisix;
      expect([conf.router.http, conf.delete_uri_tail_slash, conf.normalize_uri_like_servlet]).toEqual(['radixtree_uri', true, false]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the defaults are APISIX\'s', () => {
    const conf = loadConfig({ env: {} }).apisix;
    expect([conf.router.http, conf.delete_uri_tail_slash, conf.normalize_uri_like_servlet]).toEqual(['radixtree_host_uri', false, false]);
  });
});
