/**
 * forward-auth as APISIX's t/plugin/forward-auth.t drives it, against an
 * authorization service started here on a loopback port: pass and deny,
 * request/upstream/client headers, extra_headers with variables, POST bodies,
 * timeouts, a service that is down, allow_degradation. Plus the two attacks
 * the authorization request must resist: framing or X-Forwarded-* from the
 * client reaching it (CVE-2024-32638), and a client-sent header posing as
 * the service's answer upstream (CVE-2026-31908).
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';
import { freePort } from '../helpers/ports.js';

interface AuthSeen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  raw: string[];
  body: string;
}

let env: Env;
let auth: Server;
let authUrl: string;
const authSeen: AuthSeen[] = [];

beforeAll(async () => {
  auth = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      authSeen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw: req.rawHeaders, body });
      const path = req.url ?? '';
      if (path.startsWith('/slow')) {
        setTimeout(() => res.end('late'), 1500);
        return;
      }
      if (req.headers.authorization === 'Bearer good' || path.startsWith('/open')) {
        res.writeHead(200, { 'x-user-id': 'user-1', 'x-other': 'not-forwarded' });
        res.end();
        return;
      }
      if (path.startsWith('/nouser')) {
        res.writeHead(204);
        res.end();
        return;
      }
      res.writeHead(403, { 'content-type': 'text/plain', location: 'https://login.example/', 'x-secret': 'internal' });
      res.end('denied by auth');
    });
  });
  await new Promise<void>((resolve) => auth.listen(0, '127.0.0.1', resolve));
  authUrl = `http://127.0.0.1:${(auth.address() as AddressInfo).port}`;
  env = await startEnv();
  await env.route('fa', '/fa', {
    'forward-auth': {
      uri: `${authUrl}/auth`,
      request_headers: ['Authorization'],
      upstream_headers: ['X-User-ID'],
      client_headers: ['Location'],
      extra_headers: { 'X-Client-Addr': '$remote_addr', 'X-Tenant': 'tenant-$http_x_tenant' },
    },
  });
  await env.route('nouser', '/nouser', { 'forward-auth': { uri: `${authUrl}/nouser`, upstream_headers: ['X-User-ID'] } });
  await env.route('post', '/post', { 'forward-auth': { uri: `${authUrl}/open`, request_method: 'POST', max_req_body_size: 256, keepalive: false } });
  await env.route('slow', '/slow', { 'forward-auth': { uri: `${authUrl}/slow`, timeout: 200 } });
  await env.route('slow503', '/slow503', { 'forward-auth': { uri: `${authUrl}/slow`, timeout: 200, status_on_error: 503 } });
  const dead = await freePort();
  await env.route('down', '/down', { 'forward-auth': { uri: `http://127.0.0.1:${dead}/auth` } });
  await env.route('degrade', '/degrade', { 'forward-auth': { uri: `http://127.0.0.1:${dead}/auth`, allow_degradation: true } });
});
afterAll(async () => {
  await env?.close();
  auth?.closeAllConnections();
  await new Promise<void>((resolve) => (auth ? auth.close(() => resolve()) : resolve()));
});
beforeEach(() => {
  env.up.seen.length = 0;
  authSeen.length = 0;
});

describe('forward-auth: Admin API', () => {
  it('is listed and refuses confs APISIX refuses, and headers the gateway must own', async () => {
    const list = await env.gw.admin('GET', '/apisix/admin/plugins/list');
    expect(list.body).toContain('forward-auth');
    await expectRouteConfsRefused(env, 'forward-auth', [
      [{}, /property "uri" is required/],
      [{ uri: authUrl, request_method: 'PUT' }, /property "request_method" validation failed: matches none of the enum values/],
      [{ uri: authUrl, timeout: 0 }, /property "timeout" validation failed: expected 0 to be at least 1/],
      [{ uri: authUrl, status_on_error: 600 }, /property "status_on_error" validation failed/],
      [{ uri: authUrl, extra_headers: {} }, /property "extra_headers" validation failed/],
      [{ uri: authUrl, keepalive_timeout: 10 }, /property "keepalive_timeout" validation failed: expected 10 to be at least 1000/],
      [{ uri: 'ftp://127.0.0.1/x' }, /invalid uri/],
      [{ uri: authUrl, request_headers: ['Content-Length'] }, /request_headers: "Content-Length" frames the authorization request/],
      [{ uri: authUrl, request_headers: ['Transfer-Encoding'] }, /request_headers: "Transfer-Encoding"/],
      [{ uri: authUrl, request_headers: ['X-Forwarded-For'] }, /request_headers: "X-Forwarded-For" is set by the gateway/],
      [{ uri: authUrl, request_headers: ['x_forwarded_host'] }, /request_headers: "x_forwarded_host" is set by the gateway/],
      [{ uri: authUrl, extra_headers: { 'Content-Length': '5' } }, /extra_headers: "Content-Length" frames/],
    ]);
  });
});

describe('forward-auth: data plane', () => {
  it('lets an authorized request through with the service\'s upstream_headers, built from the gateway\'s own X-Forwarded-*', async () => {
    const res = await send(`${env.gw.dataUrl}/fa?q=1`, {
      headers: {
        authorization: 'Bearer good',
        'x-tenant': 'acme',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-uri': '/admin',
        'x-forwarded-method': 'DELETE',
        cookie: 'session=not-for-auth',
      },
    });
    expect(res.status).toBe(200);
    expect(authSeen).toHaveLength(1);
    const a = authSeen[0]!;
    expect(a.method).toBe('GET');
    expect(a.url).toBe('/auth');
    expect(a.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(a.headers['x-forwarded-host']).toBe('127.0.0.1');
    expect(a.headers['x-forwarded-uri']).toBe('/fa?q=1');
    expect(a.headers['x-forwarded-method']).toBe('GET');
    expect(a.headers['x-forwarded-proto']).toBe('http');
    expect(a.headers.authorization).toBe('Bearer good');
    expect(a.headers['x-client-addr']).toBe('127.0.0.1');
    expect(a.headers['x-tenant']).toBe('tenant-acme');
    // Only the listed client headers go to the service.
    expect(a.headers.cookie).toBeUndefined();
    const up = env.up.seen[0]!;
    expect(up.headers['x-user-id']).toBe('user-1');
    expect(up.headers['x-other']).toBeUndefined();
  });

  it('answers a denial with the service\'s status and body and only the client_headers', async () => {
    const res = await send(`${env.gw.dataUrl}/fa`, { headers: { authorization: 'Bearer bad' } });
    expect(res.status).toBe(403);
    expect(res.body).toBe('denied by auth');
    expect(res.headers.location).toBe('https://login.example/');
    expect(res.headers['x-secret']).toBeUndefined();
    expect(env.up.seen).toHaveLength(0);
  });

  it('clears an upstream_header the service did not send, so the client cannot supply it (CVE-2026-31908)', async () => {
    const res = await send(`${env.gw.dataUrl}/nouser`, { headers: { 'x-user-id': 'admin', 'X_User_ID': 'admin' } });
    expect(res.status).toBe(200);
    expect(env.up.seen[0]!.headers['x-user-id']).toBeUndefined();
  });

  it('POST: sends the client\'s body re-framed, so a smuggled request never reaches the service (CVE-2024-32638)', async () => {
    // A chunked client body whose content looks like the end of a chunked stream and a second request: if the
    // client's Transfer-Encoding reached the service beside a Content-Length, the service would read two requests.
    const smuggle = '0\r\n\r\nGET /admin HTTP/1.1\r\nHost: auth\r\n\r\n';
    const raw = await new Promise<string>((resolve, reject) => {
      const port = Number(new URL(env.gw.dataUrl).port);
      const sock = connect(port, '127.0.0.1', () => {
        const chunk = Buffer.from(smuggle);
        sock.write(
          'POST /post HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Encoding: identity\r\nConnection: close\r\n\r\n' +
            chunk.length.toString(16) + '\r\n' + smuggle + '\r\n0\r\n\r\n',
        );
      });
      let out = '';
      sock.on('data', (d) => (out += d.toString()));
      sock.on('end', () => resolve(out));
      sock.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 200/);
    expect(authSeen).toHaveLength(1);
    const a = authSeen[0]!;
    expect(a.method).toBe('POST');
    expect(a.body).toBe(smuggle);
    expect(a.headers['content-length']).toBe(String(Buffer.byteLength(smuggle)));
    expect(a.headers['transfer-encoding']).toBeUndefined();
    expect(a.headers['content-encoding']).toBe('identity');
    // keepalive: false closes the service's connection after the exchange.
    expect(a.headers.connection).toBe('close');
    expect(env.up.seen[0]!.body).toBe(smuggle);
    const big = await send(`${env.gw.dataUrl}/post`, { method: 'POST', body: 'x'.repeat(300) });
    expect(big.status).toBe(413);
  });

  it('answers status_on_error within the timeout when the service is slow or down, and passes with allow_degradation', async () => {
    let t = Date.now();
    const slow = await send(`${env.gw.dataUrl}/slow`);
    expect(slow.status).toBe(403);
    expect(Date.now() - t).toBeLessThan(1400);
    const slow503 = await send(`${env.gw.dataUrl}/slow503`);
    expect(slow503.status).toBe(503);
    t = Date.now();
    const down = await send(`${env.gw.dataUrl}/down`);
    expect(down.status).toBe(403);
    expect(env.up.seen).toHaveLength(0);
    const degrade = await send(`${env.gw.dataUrl}/degrade`);
    expect(degrade.status).toBe(200);
    expect(env.up.seen).toHaveLength(1);
    // And the gateway still serves.
    expect((await send(`${env.gw.dataUrl}/fa`, { headers: { authorization: 'Bearer good' } })).status).toBe(200);
  });
});
