/**
 * WebSocket proxying for enable_websocket routes, and upgrade requests on
 * routes that do not enable it, through real sockets with the `ws` library.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { PluginDefinition } from '../../src/core/plugin/contract.js';
import { startPlane, type Plane } from './helpers.js';

const logs: string[] = [];
const plugins: PluginDefinition[] = [
  {
    name: 'deny-header',
    priority: 100,
    schema: {},
    access: (_c, ctx) => (ctx.requestHeader('x-deny') ? { status: 403, body: { message: 'denied' } } : undefined),
    log: (_c, ctx) => void logs.push(`log:${ctx.route.id}`),
  },
];

function openWs(url: string, headers?: Record<string, string>): Promise<{ ws?: WebSocket; status?: number; body?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    ws.once('error', () => resolve({}));
  });
}

describe('data plane: WebSocket proxying', () => {
  let plane: Plane;
  let server: Server;
  let wss: WebSocketServer;
  let port: number;
  const seenPaths: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => res.end(`plain ${req.headers.upgrade ?? 'none'}`));
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws, req) => {
      seenPaths.push(`${req.url} xff=${req.headers['x-forwarded-for']}`);
      ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo:${data.toString()}`, { binary: isBinary }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    plane = await startPlane({ plugins });
    const upstream = { nodes: { [`127.0.0.1:${port}`]: 1 } };
    await plane.put('/apisix/routes/ws', { uri: '/ws/*', enable_websocket: true, plugins: { 'deny-header': {} }, upstream });
    await plane.put('/apisix/routes/plain', { uri: '/plain', upstream });
  });
  afterAll(async () => {
    await plane?.close();
    for (const c of wss.clients) c.terminate();
    wss?.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('relays messages both ways after the pipeline allowed the upgrade', async () => {
    const { ws } = await openWs(`ws://127.0.0.1:${plane.port}/ws/chat?room=1`);
    expect(ws).toBeDefined();
    const replies: string[] = [];
    ws!.on('message', (d) => replies.push(d.toString()));
    ws!.send('hi');
    ws!.send(Buffer.from([1, 2, 3]));
    await new Promise((r) => setTimeout(r, 100));
    expect(replies[0]).toBe('echo:hi');
    expect(Buffer.from(replies[1]!, 'binary').length).toBe(3);
    expect(seenPaths.at(-1)).toBe('/ws/chat?room=1 xff=127.0.0.1');
    const closed = new Promise((r) => ws!.once('close', r));
    ws!.close();
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    expect(logs).toContain('log:ws');
  });

  it('a plugin exit answers the upgrade with its status and nothing reaches the upstream', async () => {
    const before = seenPaths.length;
    const res = await openWs(`ws://127.0.0.1:${plane.port}/ws/chat`, { 'x-deny': '1' });
    expect(res.status).toBe(403);
    expect(res.body).toBe('{"message":"denied"}\n');
    expect(seenPaths.length).toBe(before);
  });

  it('an upgrade on a route without enable_websocket is proxied as a plain request', async () => {
    const res = await openWs(`ws://127.0.0.1:${plane.port}/plain`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('plain none');
  });

  it('upgrade paths are normalised before matching (.. cannot escape the prefix)', async () => {
    const res = await openWs(`ws://127.0.0.1:${plane.port}/ws/%2e%2e/plain`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('plain none');
  });

  it('upstream down → 502 on the upgrade', async () => {
    await plane.put('/apisix/routes/wsdown', { uri: '/down', enable_websocket: true, upstream: { nodes: { '127.0.0.1:1': 1 } } });
    const res = await openWs(`ws://127.0.0.1:${plane.port}/down`);
    expect(res.status).toBe(502);
  });
});
