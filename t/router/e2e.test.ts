/**
 * Routing through a whole gateway: routes written over the Admin API, requests
 * sent as raw bytes (so clients cannot tidy the path first), and the upstream
 * that answered tells which route matched.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { putRoutes, startTestGateway, type TestGateway } from '../helpers/gateway.js';

interface Named {
  name: string;
  port: number;
  server: Server;
  seen: string[];
}

async function namedUpstream(name: string): Promise<Named> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url!);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ upstream: name, url: req.url }));
  });
  // An upgrade is recorded and refused: what matters is which upstream it reached.
  server.on('upgrade', (req, socket) => {
    seen.push(req.url!);
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { name, port: (server.address() as AddressInfo).port, server, seen };
}

interface RawResponse {
  status: number;
  body: string;
}

function raw(port: number, target: string, host = 'localhost', extra = ''): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('connect', () => sock.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n${extra}\r\n`));
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.setTimeout(5000, () => sock.destroy(new Error(`timeout for ${target}`)));
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      let body = text.slice(text.indexOf('\r\n\r\n') + 4);
      if (/\r\ntransfer-encoding: chunked/i.test(text.slice(0, text.indexOf('\r\n\r\n')))) {
        let out = '';
        let rest = body;
        for (;;) {
          const nl = rest.indexOf('\r\n');
          const size = parseInt(rest.slice(0, nl), 16);
          if (!size) break;
          out += rest.slice(nl + 2, nl + 2 + size);
          rest = rest.slice(nl + 2 + size + 2);
        }
        body = out;
      }
      resolve({ status, body });
    });
  });
}

function which(r: RawResponse): string {
  if (r.status === 200) return (JSON.parse(r.body) as { upstream: string }).upstream;
  return String(r.status);
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

let gw: TestGateway;
const ups: Record<string, Named> = {};

const upstreamOf = (name: string) => ({ type: 'roundrobin', nodes: { [`127.0.0.1:${ups[name]!.port}`]: 1 } });

beforeAll(async () => {
  for (const n of ['public', 'admin', 'host', 'wild', 'beta', 'high', 'low', 'param']) ups[n] = await namedUpstream(n);
  gw = await startTestGateway();
  const routes: Array<[string, Record<string, unknown>]> = [
    ['public', { uri: '/public/*', upstream: upstreamOf('public'), enable_websocket: true }],
    ['admin', { uris: ['/admin', '/admin/*'], upstream: upstreamOf('admin'), enable_websocket: true }],
    ['host', { uri: '/h/*', host: 'api.example.com', upstream: upstreamOf('host') }],
    ['wild', { uri: '/h/*', host: '*.example.com', upstream: upstreamOf('wild') }],
    ['beta', { uri: '/v', priority: 5, vars: [['http_x_beta', '==', 'yes']], upstream: upstreamOf('beta') }],
    ['high', { uri: '/p', priority: 10, methods: ['POST'], upstream: upstreamOf('high') }],
    ['low', { uris: ['/p', '/v'], upstream: upstreamOf('low') }],
    ['param', { uri: '/user/:name', upstream: upstreamOf('param') }],
    ['lan', { uri: '/ip', remote_addrs: ['10.0.0.0/8'], upstream: upstreamOf('high') }],
    ['loop', { uri: '/ip', remote_addr: '127.0.0.0/8', priority: -1, upstream: upstreamOf('low') }],
  ];
  await putRoutes(gw, routes);
  // Config reaches the data plane through the store's watch: wait for the last route.
  await until(() => raw(gw.dataPort, '/user/x'), (r) => r.status === 200);
});

afterAll(async () => {
  await gw?.close();
  for (const u of Object.values(ups)) await new Promise<void>((r) => u.server.close(() => r()));
});

describe('path-confusion corpus (//, encoded dots and slashes, ; params, encoded prefixes)', () => {
  // [raw target, expected upstream or status, path the upstream must receive]
  const corpus: Array<[string, string, string?]> = [
    ['/admin', 'admin', '/admin'],
    ['//admin', 'admin', '/admin'],
    ['///admin//x', 'admin', '/admin/x'],
    ['/public/x', 'public', '/public/x'],
    ['/public/..%2fadmin', 'admin', '/admin'],
    ['/public/..%2Fadmin', 'admin', '/admin'],
    ['/public/%2e%2e/admin', 'admin', '/admin'],
    ['/public/%2E%2E/admin', 'admin', '/admin'],
    ['/public%2f..%2fadmin', 'admin', '/admin'],
    ['/public/./../admin', 'admin', '/admin'],
    ['/%61dmin', 'admin', '/admin'],
    ['/%70ublic/x', 'public', '/public/x'],
    ['/pub%6Cic/x', 'public', '/public/x'],
    ['/admin%2F', 'admin', '/admin/'],
    // Decoded once: the upstream sees an escaped `%`, never a dot segment.
    ['/public/%252e%252e/admin', 'public', '/public/%252e%252e/admin'],
    // `;` is literal, as in nginx: this stays under /public (see normalize-path.ts).
    ['/public/..;/admin', 'public', '/public/..;/admin'],
    ['/%2e%2e/admin', '400'],
    ['/public/../../admin', '400'],
    ['/public/%2e%2e%2f%2e%2e%2fadmin', '400'],
    ['/admin%zz', '400'],
    ['/admin%00', '400'],
    ['/%41dmin', '404'],
    ['/admin.', '404'],
    ['/admin;x', '404'],
    ['/Admin', '404'],
  ];

  it.each(corpus)('%s → %s', async (target, expected, upstreamPath) => {
    const r = await raw(gw.dataPort, target);
    expect(which(r)).toBe(expected);
    if (upstreamPath !== undefined) expect((JSON.parse(r.body) as { url: string }).url).toBe(upstreamPath);
  });

  it('a WebSocket upgrade with `..` in the path reaches the route its normalised path names', async () => {
    const before = { admin: ups.admin!.seen.length, public: ups.public!.seen.length };
    await raw(
      gw.dataPort,
      '/public/%2e%2e/admin/ws',
      'localhost',
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n',
    );
    expect(ups.public!.seen.length).toBe(before.public);
    expect(ups.admin!.seen.slice(before.admin)).toEqual(['/admin/ws']);
  });
});

describe('precedence through the data plane', () => {
  it('exact host beats wildcard host beats no match', async () => {
    expect(which(await raw(gw.dataPort, '/h/1', 'api.example.com'))).toBe('host');
    expect(which(await raw(gw.dataPort, '/h/1', 'API.Example.COM:8080'))).toBe('host');
    expect(which(await raw(gw.dataPort, '/h/1', 'web.example.com'))).toBe('wild');
    expect(which(await raw(gw.dataPort, '/h/1', 'example.com'))).toBe('404');
  });

  it('priority and vars pick among routes of one path', async () => {
    expect(which(await raw(gw.dataPort, '/v'))).toBe('low');
    expect(which(await raw(gw.dataPort, '/v', 'localhost', 'X-Beta: yes\r\n'))).toBe('beta');
    expect(which(await raw(gw.dataPort, '/p'))).toBe('low');
  });

  it('a header spelled with underscores does not satisfy http_* vars', async () => {
    // nginx ignores such headers (underscores_in_headers off); http_x_beta means X-Beta only.
    expect(which(await raw(gw.dataPort, '/v', 'localhost', 'X_Beta: yes\r\n'))).toBe('low');
  });

  it('remote_addrs use the socket address, never X-Forwarded-For', async () => {
    expect(which(await raw(gw.dataPort, '/ip'))).toBe('low');
    expect(which(await raw(gw.dataPort, '/ip', 'localhost', 'X-Forwarded-For: 10.1.2.3\r\nX-Real-IP: 10.1.2.3\r\n'))).toBe('low');
  });

  it('a route switched to status 0 leaves the router live, and back', async () => {
    expect((await gw.admin('PATCH', '/apisix/admin/routes/param', { status: 0 })).status).toBe(200);
    expect(which(await until(() => raw(gw.dataPort, '/user/bob'), (r) => r.status === 404))).toBe('404');
    expect((await gw.admin('PATCH', '/apisix/admin/routes/param', { status: 1 })).status).toBe(200);
    expect(which(await until(() => raw(gw.dataPort, '/user/bob'), (r) => r.status === 200))).toBe('param');
  });

  it('the Admin API refuses a vars expression that does not compile, with lua-resty-expr\'s message', async () => {
    const bad = await gw.admin('PUT', '/apisix/admin/routes/bad', { uri: '/bad', vars: [['arg_a', '=', '1']], upstream: upstreamOf('low') });
    expect(bad.status).toBe(400);
    expect(bad.body.error_msg).toBe("failed to validate the 'vars' expression: invalid operator '='");
    expect(which(await raw(gw.dataPort, '/bad'))).toBe('404');
  });

  it(':name parameters match one segment', async () => {
    expect(which(await raw(gw.dataPort, '/user/bob'))).toBe('param');
    expect(which(await raw(gw.dataPort, '/user/bob/x'))).toBe('404');
  });
});
