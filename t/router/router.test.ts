import { describe, expect, it } from 'vitest';
import type { Vars } from '../../src/core/plugin/ctx.js';
import type { RouteConf } from '../../src/core/model.js';
import { compileRouter, routerOptionsFor, type MatchInput, type MatchProbe, type RouterEntry, type RouterOptions } from '../../src/core/match/router.js';

const noVars: Vars = { get: () => undefined };

function build(routes: Array<RouteConf & { id: string; svcHosts?: string[] }>, opts?: RouterOptions) {
  const entries: RouterEntry<string>[] = routes.map(({ svcHosts, ...r }) => ({
    id: r.id,
    route: r,
    hosts: svcHosts,
    data: r.id,
  }));
  const router = compileRouter(entries, opts);
  return {
    router,
    match(path: string, more: Partial<MatchInput> = {}) {
      return router.match({ method: 'GET', host: 'localhost', remoteAddr: '127.0.0.1', vars: noVars, path, ...more })?.data;
    },
  };
}

describe('paths', () => {
  it('exact paths match exactly', () => {
    const { match } = build([{ id: 'a', uri: '/hello' }]);
    expect(match('/hello')).toBe('a');
    expect(match('/hello/')).toBeUndefined();
    expect(match('/hello2')).toBeUndefined();
    expect(match('/hell')).toBeUndefined();
  });

  it('a trailing * is a prefix, including the prefix itself', () => {
    const { match } = build([
      { id: 'slash', uri: '/api/*' },
      { id: 'bare', uri: '/static*' },
    ]);
    expect(match('/api/')).toBe('slash');
    expect(match('/api/x/y')).toBe('slash');
    expect(match('/api')).toBeUndefined();
    expect(match('/static')).toBe('bare');
    expect(match('/staticfoo/bar')).toBe('bare');
  });

  it('uris: any of the paths matches', () => {
    const { match } = build([{ id: 'm', uris: ['/one', '/two/*'] }]);
    expect(match('/one')).toBe('m');
    expect(match('/two/x')).toBe('m');
    expect(match('/three')).toBeUndefined();
  });

  it('an exact path wins over any prefix, whatever the priority', () => {
    const { match } = build([
      { id: 'prefix', uri: '/a/*', priority: 100 },
      { id: 'exact', uri: '/a/b', priority: -5 },
    ]);
    expect(match('/a/b')).toBe('exact');
    expect(match('/a/c')).toBe('prefix');
  });

  it('the longest prefix wins, whatever the priority and the order', () => {
    const { match } = build([
      { id: 'short', uri: '/*', priority: 10 },
      { id: 'long', uri: '/a/b/*' },
      { id: 'mid', uri: '/a/*', priority: 5 },
    ]);
    expect(match('/a/b/c')).toBe('long');
    expect(match('/a/x')).toBe('mid');
    expect(match('/z')).toBe('short');
  });

  it('a shorter prefix is tried when the longer one’s routes do not match', () => {
    const { match } = build([
      { id: 'long-post', uri: '/a/b/*', methods: ['POST'] },
      { id: 'short', uri: '/a/*' },
    ]);
    expect(match('/a/b/c')).toBe('short');
    expect(match('/a/b/c', { method: 'POST' })).toBe('long-post');
  });

  it('same path: higher priority first, then longer written path, then entry order', () => {
    const { match } = build([
      { id: 'low', uri: '/p', priority: 1 },
      { id: 'high', uri: '/p', priority: 2 },
      { id: 'first', uri: '/q' },
      { id: 'second', uri: '/q' },
      // Both have the prefix `/r/`; the longer written path comes first at equal priority.
      { id: 'star', uri: '/r/*' },
      { id: 'named', uri: '/r/*rest' },
    ]);
    expect(match('/p')).toBe('high');
    expect(match('/q')).toBe('first');
    expect(match('/r/x')).toBe('named');
  });

  it('priority falls through to lower ones when a higher candidate fails', () => {
    const { match } = build([
      { id: 'high-post', uri: '/p', priority: 9, methods: ['POST'] },
      { id: 'low', uri: '/p' },
    ]);
    expect(match('/p')).toBe('low');
    expect(match('/p', { method: 'POST' })).toBe('high-post');
  });
});

describe('parameters', () => {
  it(':name captures one non-empty segment', () => {
    const { router, match } = build([{ id: 'u', uri: '/user/:name' }]);
    expect(match('/user/bob')).toBe('u');
    expect(match('/user/')).toBeUndefined();
    expect(match('/user/bob/x')).toBeUndefined();
    const m = router.match({ method: 'GET', host: '', remoteAddr: '1.1.1.1', vars: noVars, path: '/user/bob' });
    expect(m?.params).toEqual({ name: 'bob' });
    expect(m?.matchedPath).toBe('/user/:name');
  });

  it('*name captures the rest, a bare * segment as :ext', () => {
    const { router } = build([
      { id: 'f', uri: '/files/*path' },
      { id: 's', uri: '/s/*' },
      { id: 'mix', uri: '/org/:org/repo/*rest' },
    ]);
    const m = (path: string) => router.match({ method: 'GET', host: '', remoteAddr: '1.1.1.1', vars: noVars, path });
    expect(m('/files/a/b.txt')?.params).toEqual({ path: 'a/b.txt' });
    expect(m('/files/')?.params).toEqual({ path: '' });
    expect(m('/s/x/y')?.params).toEqual({ ':ext': 'x/y' });
    expect(m('/org/acme/repo/x/y')).toMatchObject({ data: 'mix', params: { org: 'acme', rest: 'x/y' } });
    expect(m('/org/acme/other/x')).toBeUndefined();
  });

  it('a colon inside a segment is literal (Google-style custom methods)', () => {
    const { match } = build([
      { id: 'custom', uri: '/v1/items:batchGet' },
      { id: 'both', uri: '/v1/:coll/x:y' },
    ]);
    expect(match('/v1/items:batchGet')).toBe('custom');
    expect(match('/v1/itemsZZZ')).toBeUndefined();
    expect(match('/v1/items')).toBeUndefined();
    expect(match('/v1/books/x:y')).toBe('both');
    expect(match('/v1/books/x:z')).toBeUndefined();
  });

  it('regex characters in a written path are literal', () => {
    const { match } = build([{ id: 'dot', uri: '/v1.0/:id' }]);
    expect(match('/v1.0/7')).toBe('dot');
    expect(match('/v1x0/7')).toBeUndefined();
  });

  it('with params off, : is literal as in APISIX’s default router', () => {
    const { match } = build([{ id: 'lit', uri: '/user/:name' }], { params: false });
    expect(match('/user/:name')).toBe('lit');
    expect(match('/user/bob')).toBeUndefined();
  });
});

describe('hosts', () => {
  it('exact hosts, case-insensitive', () => {
    const { match } = build([{ id: 'h', uri: '/x', hosts: ['Foo.com', 'bar.com'] }]);
    expect(match('/x', { host: 'foo.com' })).toBe('h');
    expect(match('/x', { host: 'FOO.COM' })).toBe('h');
    expect(match('/x', { host: 'bar.com' })).toBe('h');
    expect(match('/x', { host: 'baz.com' })).toBeUndefined();
  });

  it('wildcard hosts match subdomains only, the longest suffix first', () => {
    const { match } = build([
      { id: 'wide', uri: '/x', host: '*.com' },
      { id: 'narrow', uri: '/x', host: '*.example.com' },
    ]);
    expect(match('/x', { host: 'a.example.com' })).toBe('narrow');
    expect(match('/x', { host: 'a.b.example.com' })).toBe('narrow');
    expect(match('/x', { host: 'example.com' })).toBe('wide');
    expect(match('/x', { host: 'example.org' })).toBeUndefined();
  });

  it('an exact host beats a wildcard, and a host route beats a host-less one', () => {
    const { match } = build([
      { id: 'nohost', uri: '/x', priority: 100 },
      { id: 'wild', uri: '/x', host: '*.example.com' },
      { id: 'exact', uri: '/x', host: 'api.example.com' },
    ]);
    expect(match('/x', { host: 'api.example.com' })).toBe('exact');
    expect(match('/x', { host: 'web.example.com' })).toBe('wild');
    expect(match('/x', { host: 'other.org' })).toBe('nohost');
  });

  it('host level beats path precision: a host route’s prefix beats a host-less exact path', () => {
    const { match } = build([
      { id: 'nohost-exact', uri: '/a/b' },
      { id: 'host-prefix', uri: '/*', host: 'h.com' },
    ]);
    expect(match('/a/b', { host: 'h.com' })).toBe('host-prefix');
    expect(match('/a/b', { host: 'x.com' })).toBe('nohost-exact');
  });

  it('falls back from a host to the next level when its routes do not match', () => {
    const { match } = build([
      { id: 'exact-host', uri: '/only', host: 'a.example.com' },
      { id: 'wild', uri: '/*', host: '*.example.com' },
      { id: 'any', uri: '/*' },
    ]);
    expect(match('/only', { host: 'a.example.com' })).toBe('exact-host');
    expect(match('/other', { host: 'a.example.com' })).toBe('wild');
    expect(match('/other', { host: 'example.net' })).toBe('any');
  });

  it('a lone * host matches any host but still ranks before host-less routes', () => {
    const { match } = build([
      { id: 'nohost', uri: '/x' },
      { id: 'star', uri: '/x', host: '*' },
    ]);
    expect(match('/x', { host: 'whatever.io' })).toBe('star');
  });

  it('the caller’s effective hosts (from the service) are used', () => {
    const { match } = build([{ id: 'svc', uri: '/x', svcHosts: ['svc.io'] }]);
    expect(match('/x', { host: 'svc.io' })).toBe('svc');
    expect(match('/x', { host: 'other.io' })).toBeUndefined();
  });
});

describe('wildcard host suffixes', () => {
  it('shares and splits suffix edges correctly, with or without a dot', () => {
    const { match } = build([
      { id: 'a', uri: '/x', host: '*.a.example.com' },
      { id: 'b', uri: '/x', host: '*.b.example.com' },
      { id: 'any-example', uri: '/x', host: '*.example.com' },
      { id: 'nodot', uri: '/x', host: '*foo.io' },
    ]);
    expect(match('/x', { host: 'q.a.example.com' })).toBe('a');
    expect(match('/x', { host: 'q.b.example.com' })).toBe('b');
    expect(match('/x', { host: 'q.c.example.com' })).toBe('any-example');
    expect(match('/x', { host: 'a.example.com' })).toBe('any-example');
    expect(match('/x', { host: 'barfoo.io' })).toBe('nodot');
    expect(match('/x', { host: 'foo.io' })).toBe('nodot');
    expect(match('/x', { host: 'oo.io' })).toBeUndefined();
    expect(match('/x', { host: '' })).toBeUndefined();
  });
});

describe('radixtree_uri mode (no host levels)', () => {
  it('ranks by path only and checks hosts per route', () => {
    const routes = [
      { id: 'host-prefix', uri: '/*', host: 'h.com' },
      { id: 'nohost-exact', uri: '/a/b' },
      { id: 'wild-exact', uri: '/w', hosts: ['*.h.com'] },
    ];
    const { match } = build(routes, routerOptionsFor('radixtree_uri'));
    // The exact path wins now, even for the host that has its own route.
    expect(match('/a/b', { host: 'h.com' })).toBe('nohost-exact');
    expect(match('/zzz', { host: 'H.com' })).toBe('host-prefix');
    expect(match('/zzz', { host: 'x.com' })).toBeUndefined();
    expect(match('/w', { host: 'api.h.com' })).toBe('wild-exact');
    expect(match('/w', { host: 'h.org' })).toBeUndefined();
  });

  it('maps APISIX router names', () => {
    expect(routerOptionsFor('radixtree_host_uri')).toEqual({ hostLevels: true, params: true });
    expect(routerOptionsFor('radixtree_uri')).toEqual({ hostLevels: false, params: false });
    expect(routerOptionsFor('radixtree_uri_with_parameter')).toEqual({ hostLevels: false, params: true });
    expect(routerOptionsFor('nope')).toBeUndefined();
  });
});

describe('methods, remote_addrs, vars, status', () => {
  it('methods: missing means any; unknown request methods match only method-less routes', () => {
    const { match } = build([
      { id: 'get', uri: '/m', methods: ['GET', 'HEAD'] },
      { id: 'any', uri: '/n' },
    ]);
    expect(match('/m')).toBe('get');
    expect(match('/m', { method: 'HEAD' })).toBe('get');
    expect(match('/m', { method: 'DELETE' })).toBeUndefined();
    expect(match('/n', { method: 'BREW' })).toBe('any');
    expect(match('/m', { method: 'BREW' })).toBeUndefined();
  });

  it('remote_addrs and remote_addr', () => {
    const { match } = build([
      { id: 'lan', uri: '/r', remote_addrs: ['10.0.0.0/8', '::1'] },
      { id: 'one', uri: '/s', remote_addr: '192.0.2.1' },
    ]);
    expect(match('/r', { remoteAddr: '10.1.1.1' })).toBe('lan');
    expect(match('/r', { remoteAddr: '::ffff:10.1.1.1' })).toBe('lan');
    expect(match('/r', { remoteAddr: '::1' })).toBe('lan');
    expect(match('/r', { remoteAddr: '11.1.1.1' })).toBeUndefined();
    expect(match('/s', { remoteAddr: '192.0.2.1' })).toBe('one');
    expect(match('/s', { remoteAddr: '192.0.2.2' })).toBeUndefined();
  });

  it('vars select among routes of the same path', () => {
    const { match } = build([
      { id: 'beta', uri: '/v', priority: 1, vars: [['http_x_beta', '==', '1']] },
      { id: 'stable', uri: '/v' },
    ]);
    const withHeader: Vars = { get: (n) => (n === 'http_x_beta' ? '1' : undefined) };
    expect(match('/v', { vars: withHeader })).toBe('beta');
    expect(match('/v')).toBe('stable');
  });

  it('status 0 leaves the route out', () => {
    const { router, match } = build([
      { id: 'off', uri: '/o', status: 0 },
      { id: 'on', uri: '/o', status: 1 },
    ]);
    expect(match('/o')).toBe('on');
    expect(router.size).toBe(1);
  });

  it('a route whose vars or addresses do not compile is left out and reported', () => {
    const { router, match } = build([
      { id: 'bad-vars', uri: '/b', vars: [['arg_a', '=', '1']] },
      { id: 'bad-ip', uri: '/b', remote_addrs: ['1.2.3.4/99'] },
      { id: 'good', uri: '/b' },
    ]);
    expect(match('/b')).toBe('good');
    expect(router.errors).toEqual([
      { id: 'bad-vars', error: "failed to handle expression: invalid operator '='" },
      { id: 'bad-ip', error: 'invalid IP address: invalid ip address: 1.2.3.4/99' },
    ]);
  });

  it('an entry filter runs after vars', () => {
    const entries: RouterEntry<string>[] = [
      { id: 'f', route: { uri: '/f' }, data: 'f', filter: (v) => v.get('arg_ok') === 'yes' },
    ];
    const r = compileRouter(entries);
    const m = (ok: string) =>
      r.match({ method: 'GET', host: '', remoteAddr: '1.1.1.1', path: '/f', vars: { get: () => ok } })?.data;
    expect(m('yes')).toBe('f');
    expect(m('no')).toBeUndefined();
  });

  it('counts candidates in a probe', () => {
    const { router } = build([
      { id: 'a', uri: '/p', methods: ['POST'] },
      { id: 'b', uri: '/p', methods: ['PUT'] },
      { id: 'c', uri: '/*' },
    ]);
    const probe: MatchProbe = { candidates: 0 };
    const m = router.match({ method: 'GET', host: '', remoteAddr: '1.1.1.1', vars: noVars, path: '/p' }, probe);
    expect(m?.data).toBe('c');
    expect(probe.candidates).toBe(3);
  });
});
