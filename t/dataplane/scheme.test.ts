/**
 * Scheme takeover (APISIX's `scheme: kafka` branch): after rewrite/access the
 * request is handed to the registered SchemeHandler instead of being proxied.
 * A test scheme exercises accept/reject; the real kafka handler is checked
 * for the non-upgrade answer: a 4xx JSON error, not a 500.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { PluginDefinition } from '../../src/core/plugin/contract.js';
import { dataKey } from '../../src/core/plugin/ctx.js';
import { registerSchemeHandler } from '../../src/core/pubsub/scheme-handler.js';
import { registerKafkaPubSub } from '../../src/pubsub/index.js';
import { send, startPlane, type Plane } from './helpers.js';

// The core knows schemes only by what is registered; src/gateway.ts and src/worker.ts register the messaging
// backends, and this in-process data plane is composed here, so the test registers the real Kafka one itself.
registerKafkaPubSub();

const events: string[] = [];
const TEST_MARKER = dataKey<string>('test_marker');
registerSchemeHandler('portico-test', async (request) => {
  events.push(`handler upgrade=${request.isUpgrade} sasl=${String(request.ctx.getData(TEST_MARKER))}`);
  if (!request.isUpgrade) {
    request.reject(400, { error_msg: 'websocket upgrade required' });
    return;
  }
  const ws = await request.accept({ maxPayload: 1024 });
  ws.on('message', (d) => ws.send(`got ${d.toString()}`));
  ws.resume(); // accept() hands the socket over paused; listeners are attached now
  await new Promise((r) => ws.once('close', r));
  events.push('session over');
});

const plugins: PluginDefinition[] = [
  {
    name: 'marker',
    priority: 508,
    schema: {},
    access: (_c, ctx) => void ctx.setData(TEST_MARKER, 'set-in-access'),
    log: () => void events.push('log'),
  },
  {
    name: 'deny',
    priority: 2000,
    schema: {},
    access: (_c, ctx) => (ctx.requestHeader('x-deny') ? { status: 401, body: { message: 'no' } } : undefined),
  },
];

describe('data plane: scheme takeover', () => {
  let plane: Plane;
  beforeAll(async () => {
    plane = await startPlane({ plugins });
    await plane.put('/apisix/routes/t', { uri: '/t', plugins: { marker: {}, deny: {} }, upstream: { scheme: 'portico-test', nodes: { '127.0.0.1:1': 1 } } });
    await plane.put('/apisix/routes/k', { uri: '/kafka', upstream: { scheme: 'kafka', nodes: { '127.0.0.1:1': 1 } } });
  });
  afterAll(async () => {
    await plane?.close();
  });

  it('hands a WebSocket upgrade to the handler after access ran, and logs when the session ends', async () => {
    events.length = 0;
    const ws = new WebSocket(`ws://127.0.0.1:${plane.port}/t`);
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    const reply = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
    ws.send('ping');
    expect(await reply).toBe('got ping');
    ws.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual(['handler upgrade=true sasl=set-in-access', 'session over', 'log']);
  });

  it('a non-upgrade request is answered by the handler’s reject', async () => {
    const res = await send(plane.port, { path: '/t' });
    expect(res.status).toBe(400);
    expect(res.body).toBe('{"error_msg":"websocket upgrade required"}\n');
  });

  it('an access-phase exit wins before any takeover', async () => {
    events.length = 0;
    const res = await send(plane.port, { path: '/t', headers: { 'x-deny': '1' } });
    expect(res.status).toBe(401);
    expect(events.filter((e) => e.startsWith('handler'))).toEqual([]);
  });

  it('the kafka handler answers a plain request with a 4xx JSON error, not a 500', async () => {
    const res = await send(plane.port, { path: '/kafka' });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(JSON.parse(res.body).error_msg).toBeDefined();
  });
});
