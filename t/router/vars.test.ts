import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalizePath } from '../../src/core/http/normalize-path.js';
import { LazyVars, nginxTime, parseCookies, type VarsSource } from '../../src/core/http/vars.js';
import { parseQuery } from '../../src/core/http/query.js';

// A real HTTP server builds LazyVars from each request and echoes the variables
// named in the `x-want` header, so every value below came through a socket.
let server: Server;
let base: string;
let port: number;
const lastVars: LazyVars[] = [];

function sourceOf(req: IncomingMessage): VarsSource & { route?: { id: string; name?: string } } {
  const n = normalizePath(req.url ?? '/');
  if ('error' in n) throw new Error(n.error);
  return {
    req,
    method: req.method ?? 'GET',
    path: n.path,
    query: n.query,
    remoteAddr: req.socket.remoteAddress ?? '',
    remotePort: req.socket.remotePort ?? 0,
    host: (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase(),
  };
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const src = sourceOf(req);
    const vars = new LazyVars(src);
    lastVars.push(vars);
    const want = String(req.headers['x-want'] ?? '').split(',').filter(Boolean);
    const before: Record<string, string | null> = {};
    for (const name of want) before[name] = vars.get(name) ?? null;
    // The route becomes known after matching; its variables must follow.
    src.route = { id: '42', name: 'r42' };
    const after = { route_id: vars.get('route_id') ?? null, route_name: vars.get('route_name') ?? null };
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ before, after }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

async function read(path: string, want: string[], headers: Record<string, string> = {}, method = 'GET') {
  const res = await fetch(base + path, { method, headers: { 'x-want': want.join(','), ...headers } });
  return (await res.json()) as { before: Record<string, string | null>; after: Record<string, string | null> };
}

describe('LazyVars over a real request', () => {
  it('request line and connection variables', async () => {
    const r = await read('/a/%70b//c?x=1&y=two%20words', [
      'uri',
      'request_uri',
      'query_string',
      'args',
      'is_args',
      'request_method',
      'scheme',
      'host',
      'remote_addr',
      'server_addr',
      'server_port',
      'server_protocol',
      'request_line',
    ], {}, 'PATCH');
    expect(r.before).toEqual({
      uri: '/a/pb/c',
      request_uri: '/a/%70b//c?x=1&y=two%20words',
      query_string: 'x=1&y=two%20words',
      args: 'x=1&y=two%20words',
      is_args: '?',
      request_method: 'PATCH',
      scheme: 'http',
      host: '127.0.0.1',
      remote_addr: '127.0.0.1',
      server_addr: '127.0.0.1',
      server_port: String(port),
      server_protocol: 'HTTP/1.1',
      request_line: 'PATCH /a/%70b//c?x=1&y=two%20words HTTP/1.1',
    });
    const rp = await read('/', ['remote_port']);
    expect(Number(rp.before.remote_port)).toBeGreaterThan(0);
  });

  it('arg_* reads the first decoded value, case-sensitively', async () => {
    const r = await read('/q?a=1&a=2&b=x+y%2Bz&flag&Case=up&e=', ['arg_a', 'arg_b', 'arg_flag', 'arg_case', 'arg_Case', 'arg_e', 'arg_none']);
    expect(r.before).toEqual({ arg_a: '1', arg_b: 'x y+z', arg_flag: '', arg_case: null, arg_Case: 'up', arg_e: '', arg_none: null });
  });

  it('http_* reads headers with _ for -', async () => {
    const r = await read('/h', ['http_x_custom_thing', 'http_user_agent', 'http_absent', 'content_type'], {
      'x-custom-thing': 'v1',
      'user-agent': 'probe/1',
      'content-type': 'text/plain',
    });
    expect(r.before).toEqual({
      http_x_custom_thing: 'v1',
      http_user_agent: 'probe/1',
      http_absent: null,
      content_type: 'text/plain',
    });
  });

  it('cookie_* reads raw cookie values', async () => {
    const r = await read('/c', ['cookie_sid', 'cookie_theme', 'cookie_nope'], { cookie: 'sid=abc%3D; theme=dark; sid=second' });
    expect(r.before).toEqual({ cookie_sid: 'abc%3D', cookie_theme: 'dark', cookie_nope: null });
  });

  it('route variables appear once the route is known', async () => {
    const r = await read('/r', ['route_id', 'consumer_name']);
    expect(r.before).toEqual({ route_id: null, consumer_name: null });
    expect(r.after).toEqual({ route_id: '42', route_name: 'r42' });
  });

  it('is_args is empty without a query, and unknown names are undefined', async () => {
    const r = await read('/plain', ['is_args', 'query_string', 'no_such_var']);
    expect(r.before).toEqual({ is_args: '', query_string: '', no_such_var: null });
  });
});

describe('LazyVars laziness and overrides', () => {
  it('does no work in the constructor: a throwing source is not touched until a read', () => {
    const src = new Proxy({} as VarsSource, {
      get() {
        throw new Error('touched');
      },
    });
    const v = new LazyVars(src);
    expect(() => v.get('uri')).toThrow('touched');
  });

  it('parses the query and cookies once', () => {
    let queryReads = 0;
    let cookieReads = 0;
    const req = {
      headers: new Proxy({ cookie: 'a=1; b=2' } as Record<string, string>, {
        get(t, k: string) {
          if (k === 'cookie') cookieReads++;
          return t[k];
        },
      }),
    };
    const src = {
      req,
      get query() {
        queryReads++;
        return 'x=1&y=2';
      },
    } as unknown as VarsSource;
    const v = new LazyVars(src);
    expect([v.get('arg_x'), v.get('arg_y'), v.get('arg_z')]).toEqual(['1', '2', undefined]);
    expect([v.get('cookie_a'), v.get('cookie_b')]).toEqual(['1', '2']);
    expect(queryReads).toBe(1);
    expect(cookieReads).toBe(1);
  });

  it('set() overrides and adds variables, undefined removes the override', () => {
    const v = new LazyVars({ path: '/p' } as unknown as VarsSource);
    v.set('uri', '/rewritten');
    v.set('upstream_addr', '10.0.0.1:80');
    expect(v.get('uri')).toBe('/rewritten');
    expect(v.get('upstream_addr')).toBe('10.0.0.1:80');
    v.set('uri', undefined);
    expect(v.get('uri')).toBe('/p');
  });

  it('upstream_uri re-encodes the upstream path', () => {
    const v = new LazyVars({ upstreamRequest: { path: '/a b/é', query: 'q=1' } } as unknown as VarsSource);
    expect(v.get('upstream_uri')).toBe('/a%20b/%C3%A9?q=1');
  });
});

describe('time variables', () => {
  it('format like nginx', () => {
    const d = new Date(2024, 4, 1, 9, 8, 7);
    const iso = nginxTime(d, true);
    const local = nginxTime(d, false);
    expect(iso).toMatch(/^2024-05-01T09:08:07[+-]\d{2}:\d{2}$/);
    expect(local).toMatch(/^01\/May\/2024:09:08:07 [+-]\d{4}$/);
    const v = new LazyVars({} as VarsSource);
    expect(v.get('time_iso8601')).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/);
    expect(Math.abs(Number(v.get('msec')) * 1000 - Date.now())).toBeLessThan(5000);
  });
});

describe('parsers', () => {
  it('parseQuery keeps the first value and tolerates bad escapes', () => {
    const q = parseQuery('a=1&a=2&&b=%zz&c=%41');
    expect([...q.entries()]).toEqual([
      ['a', '1'],
      ['b', '%zz'],
      ['c', 'A'],
    ]);
  });
  it('parseCookies splits on ; only', () => {
    expect([...parseCookies('a=1,2; b = x ;c').entries()]).toEqual([
      ['a', '1,2'],
      ['b', 'x'],
    ]);
  });
});
