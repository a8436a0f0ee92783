/**
 * Shared pieces for the plugin tests: a recording upstream on port 0, a way to
 * wait until admin writes reach the data plane without spending a request on
 * the route under test, and a raw HTTP client that shows every header.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import type { DeepPartial } from '../../src/core/config/file.js';
import type { PorticoConfig } from '../../src/core/config/types.js';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface UpstreamReply {
  status?: number;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
}

export interface Upstream {
  port: number;
  node: string;
  seen: SeenRequest[];
  /** Replies by path prefix; the default answers 200 `upstream ok`. */
  replies: Map<string, UpstreamReply>;
  close(): Promise<void>;
}

export async function startUpstream(): Promise<Upstream> {
  const seen: SeenRequest[] = [];
  const replies = new Map<string, UpstreamReply>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '';
      if (!url.startsWith('/__sync/')) {
        seen.push({ method: req.method ?? '', url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      }
      let reply: UpstreamReply = {};
      for (const [prefix, r] of replies) if (url.startsWith(prefix)) reply = r;
      res.writeHead(reply.status ?? 200, { 'content-type': 'text/plain', ...(reply.headers ?? {}) });
      res.end(reply.body ?? 'upstream ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    node: `127.0.0.1:${port}`,
    seen,
    replies,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface Env {
  gw: TestGateway;
  up: Upstream;
  /** PUT an object through the Admin API and wait until the data plane serves it. */
  put(path: string, body: unknown): Promise<void>;
  /** A route on the test upstream with these plugins, applied before it returns. */
  route(id: string, uri: string, plugins: Record<string, unknown>, extra?: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

let syncSeq = 0;

export async function startEnv(config?: DeepPartial<PorticoConfig>): Promise<Env> {
  const up = await startUpstream();
  const gw = await startTestGateway({ config });
  const upstream = { type: 'roundrobin', nodes: { [up.node]: 1 } };

  // Writes reach the data plane in revision order, so once a sync route written
  // after them is served, they are too; the route under test sees no extra traffic.
  async function sync(): Promise<void> {
    const n = ++syncSeq;
    const res = await gw.admin('PUT', `/apisix/admin/routes/__sync`, { uri: `/__sync/${n}`, upstream });
    if (res.status >= 300) throw new Error(`sync route rejected: ${res.status} ${res.text}`);
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await fetch(`${gw.dataUrl}/__sync/${n}`);
      await r.arrayBuffer();
      if (r.status === 200) return;
      if (Date.now() > deadline) throw new Error('config change did not reach the data plane within 5 s');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async function put(path: string, body: unknown): Promise<void> {
    const res = await gw.admin('PUT', path, body);
    if (res.status >= 300) throw new Error(`PUT ${path} → ${res.status} ${res.text}`);
    await sync();
  }

  return {
    gw,
    up,
    put,
    route: (id, uri, plugins, extra = {}) => put(`/apisix/admin/routes/${id}`, { uri, plugins, upstream, ...extra }),
    async close() {
      await gw.close();
      await up.close();
    },
  };
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** node:http keeps repeated headers (Vary, Set-Cookie) that fetch would merge. */
export function send(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Each route conf in `bad` is refused with 400, naming the plugin and matching its message. */
export async function expectRouteConfsRefused(env: Env, plugin: string, bad: ReadonlyArray<[unknown, RegExp]>): Promise<void> {
  for (const [conf, msg] of bad) {
    const r = await env.gw.admin('PUT', '/apisix/admin/routes/refused-conf', {
      uri: '/refused-conf',
      plugins: { [plugin]: conf },
      upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } },
    });
    expect(r.status, JSON.stringify(conf)).toBe(400);
    expect(r.body.error_msg).toMatch(new RegExp(`failed to check the configuration of plugin ${plugin} err: `));
    expect(r.body.error_msg).toMatch(msg);
  }
}

/** An encrypt_fields value: the admin key reads `plain` back, the viewer key only the stored ciphertext. */
export async function expectEncryptedAtRest(env: Env, path: string, plugin: string, field: string, plain: string): Promise<void> {
  const admin = await env.gw.admin('GET', path);
  expect(admin.body.value.plugins[plugin][field]).toBe(plain);
  const viewer = await env.gw.admin('GET', path, undefined, env.gw.viewerKey);
  expect(viewer.body.value.plugins[plugin][field]).not.toBe(plain);
  expect(viewer.body.value.plugins[plugin][field]).toMatch(/^[A-Za-z0-9+/]+=*$/);
}

export interface StreamingUpstream {
  node: string;
  /** Requests served so far. */
  hits(): number;
  close(): void;
}

/** An upstream that writes `body` in `chunk`-sized writes, one per tick, without Content-Length. */
export async function startStreamingUpstream(body: Buffer, contentType: string, chunk = 16384): Promise<StreamingUpstream> {
  let hits = 0;
  const server: Server = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': contentType });
    let i = 0;
    const step = (): void => {
      if (i >= body.length) return void res.end();
      res.write(body.subarray(i, i + chunk));
      i += chunk;
      setImmediate(step);
    };
    step();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    node: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits: () => hits,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}
