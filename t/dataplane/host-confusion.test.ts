/**
 * The host a request is routed by, and the one its upstream sees, cannot be
 * told apart by a client: a route limited to `hosts: ["b.example"]` (and
 * guarded by ip-restriction) sits on the same uri as a host-less route, and
 * each trick below once reached the host-less one.
 * - two Host lines: 400 (RFC 9112 §3.2: a request with more than one is invalid);
 * - an absolute-form target: its authority is the host, whatever Host says (RFC 9112 §3.2.2);
 * - a trailing dot: `b.example.` is `b.example`, as nginx (and so APISIX) reads it;
 * - a malformed Host (`a/b`, `a..b`): 400, as nginx answers.
 * The upstream (pass_host "pass") gets the host routing used.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { useGatewayWithEcho } from '../helpers/gateway.js';
import { rawRequest } from './helpers.js';

const env = useGatewayWithEcho();

beforeAll(async () => {
  const { gw, up } = env;
  const upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
  const put = async (id: string, body: unknown) => {
    const res = await gw.admin('PUT', `/apisix/admin/routes/${id}`, body);
    expect(res.status, res.text).toBeLessThan(300);
  };
  await put('guarded', { uri: '/h/*', hosts: ['b.example'], plugins: { 'ip-restriction': { blacklist: ['127.0.0.0/8'] } }, upstream });
  await put('open', { uri: '/h/*', upstream });
  await put('c', { uri: '/c/*', hosts: ['c.example'], upstream });
  await put('any', { uri: '/c/*', upstream, plugins: { 'response-rewrite': { headers: { set: { 'x-route': 'any' } } } } });
  // Let the data plane apply the writes.
  for (let i = 0; i < 100; i++) {
    const out = await get('GET /c/x HTTP/1.1\r\nHost: c.example\r\n');
    if (out.startsWith('HTTP/1.1 200') && !/x-route: any/i.test(out)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
});

function get(head: string): Promise<string> {
  return rawRequest(env.gw.dataPort, `${head}Connection: close\r\n\r\n`);
}

function status(out: string): number {
  return Number(out.slice(9, 12));
}

/** The Host header the echo upstream received. */
function upstreamHost(out: string): string {
  return JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)).headers.host as string;
}

describe('requests cannot pick a different route than their host says', () => {
  it('control: Host b.example is refused by the guarded route, a.example reaches the open one', async () => {
    expect(status(await get('GET /h/x HTTP/1.1\r\nHost: b.example\r\n'))).toBe(403);
    expect(status(await get('GET /h/x HTTP/1.1\r\nHost: a.example\r\n'))).toBe(200);
  });

  it('two Host lines are a bad request', async () => {
    expect(status(await get('GET /h/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n'))).toBe(400);
    expect(status(await get('GET /h/x HTTP/1.1\r\nHost: b.example\r\nhost: b.example\r\n'))).toBe(400);
  });

  it('an absolute-form target routes by its authority', async () => {
    expect(status(await get('GET http://b.example/h/x HTTP/1.1\r\nHost: a.example\r\n'))).toBe(403);
    expect(status(await get('GET http://B.Example:9080/h/x HTTP/1.1\r\nHost: a.example\r\n'))).toBe(403);
  });

  it('a trailing dot is dropped before matching', async () => {
    expect(status(await get('GET /h/x HTTP/1.1\r\nHost: b.example.\r\n'))).toBe(403);
    expect(status(await get('GET /h/x HTTP/1.1\r\nHost: B.EXAMPLE.:80\r\n'))).toBe(403);
  });

  it('a malformed Host is a bad request', async () => {
    for (const host of ['b.example/x', 'b..example', 'b.example\\', '[::1', 'a b']) {
      expect(status(await get(`GET /h/x HTTP/1.1\r\nHost: ${host}\r\n`)), host).toBe(400);
    }
  });
});

describe('the upstream sees the host routing used', () => {
  it('absolute form: the authority, not the Host line', async () => {
    const out = await get('GET http://c.example:8080/c/x HTTP/1.1\r\nHost: a.example\r\n');
    expect(status(out)).toBe(200);
    expect(out).not.toMatch(/x-route: any/i);
    expect(upstreamHost(out)).toBe('c.example:8080');
  });

  it('trailing dot: the host without it', async () => {
    const out = await get('GET /c/x HTTP/1.1\r\nHost: c.example.\r\n');
    expect(status(out)).toBe(200);
    expect(out).not.toMatch(/x-route: any/i);
    expect(upstreamHost(out)).toBe('c.example');
  });

  it('a plain request keeps its Host as sent', async () => {
    const out = await get('GET /c/x HTTP/1.1\r\nHost: c.example:9\r\n');
    expect(upstreamHost(out)).toBe('c.example:9');
  });
});
