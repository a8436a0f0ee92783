/**
 * t/pubsub/pubsub.t through a whole gateway: a route with `scheme: kafka` is
 * taken over by the data plane, and this test process registers its own
 * handler for that scheme (APISIX's serverless test route: a session whose
 * cmd_ping answers "test" and fails otherwise). The real Kafka handler is
 * tested by the Kafka backend's own suite.
 */
import { connect as netConnect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openPubSub } from '../../src/core/pubsub/session.js';
import { decodeResponse, encodeRequest, type PubSubResponse } from '../../src/core/pubsub/codec.js';
import { registerSchemeHandler } from '../../src/core/pubsub/scheme-handler.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { connect, type PubSubClient } from '../helpers/pubsub-client.js';

const state = (r: PubSubResponse | undefined): string | undefined => (r && 'pong_resp' in r ? Buffer.from(r.pong_resp.state ?? []).toString() : undefined);
const logs: string[] = [];
const logger = { debug: () => {}, warn: (m: string) => logs.push(m), error: (m: string) => logs.push(m) };

describe('pubsub.t through the gateway', () => {
  let gw: TestGateway;
  let url: string;
  const clients: PubSubClient[] = [];
  const open = async (): Promise<PubSubClient> => {
    const c = await connect(url);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    gw = await startTestGateway({ config: { apisix: { pubsub: { max_frame_size: 4096, idle_timeout: 0 } } } });
    // After start: the gateway registers the real kafka handler while starting.
    registerSchemeHandler('kafka', async (request) => {
      const session = await openPubSub(request, { logger });
      if (!session) return;
      session.on('cmd_ping', async (p) => {
        if (Buffer.from(p.state).toString() === 'test') return { pong_resp: { state: Buffer.from('test') } };
        throw new Error('error');
      });
      await session.wait();
    });
    url = `ws://127.0.0.1:${gw.dataPort}/pubsub`;
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('1: the route is created', async () => {
    const r = await gw.admin('PUT', '/apisix/admin/routes/pubsub', { uri: '/pubsub', upstream: { scheme: 'kafka', type: 'roundrobin', nodes: { '127.0.0.1:1': 1 } } });
    expect(r.status).toBeLessThan(300);
  });

  it('2: a plain GET is refused with 400 and a JSON error', async () => {
    const res = await fetch(`http://127.0.0.1:${gw.dataPort}/pubsub`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error_msg: 'failed to initialize pubsub module: a WebSocket upgrade is required (bad "upgrade" request header: nil)' });
  });

  it('3, 4, 5: ping "test" → pong, other state → "error", cmd_empty → "unknown command"', async () => {
    const c = await open();
    expect(state(await c.request({ cmd_ping: { state: Buffer.from('test') } }, { sequence: 0n }))).toBe('test');
    expect(await c.request({ cmd_ping: { state: Buffer.from('non-test') } }, { sequence: 0n })).toEqual({ sequence: 0n, error_resp: { code: 0, message: 'error' } });
    expect(await c.request({ cmd_empty: {} }, { sequence: 2n ** 63n - 1n })).toEqual({ sequence: 2n ** 63n - 1n, error_resp: { code: 0, message: 'unknown command' } });
  });

  it('6, 7, 8: text and empty frames get no answer; garbage gets "wrong command" with sequence 0', async () => {
    const c = await open();
    c.sendRaw('test');
    c.sendRaw(new Uint8Array(0));
    expect(await c.next(300)).toBeUndefined();
    c.sendRaw(Buffer.from('!@#$%^&*中文'));
    expect(await c.next(2000)).toEqual({ sequence: 0n, error_resp: { code: 0, message: 'wrong command' } });
    expect(state(await c.request({ cmd_ping: { state: Buffer.from('test') } }))).toBe('test');
  });

  it('the configured max_frame_size reaches the socket: a bigger frame is closed with 1009', async () => {
    const c = await open();
    c.sendRaw(Buffer.alloc(5000));
    expect(await c.closed()).toBe(1009);
  });

  // Checklist 30: accept() hands over a paused socket, so a frame that arrived with the handshake is kept.
  it('a frame sent together with the upgrade request is answered', async () => {
    const payload = Buffer.from(encodeRequest({ sequence: 4n, cmd_ping: { state: Buffer.from('test') } }));
    const mask = Buffer.from([9, 8, 7, 6]);
    const frame = Buffer.concat([Buffer.from([0x82, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
    const head = `GET /pubsub HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const sock = netConnect(gw.dataPort, '127.0.0.1');
    try {
      let got = Buffer.alloc(0);
      const reply = new Promise<PubSubResponse>((resolve, reject) => {
        setTimeout(() => reject(new Error('no answer to the frame sent with the handshake')), 3000);
        sock.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d]);
          const end = got.indexOf('\r\n\r\n');
          const f = end < 0 ? Buffer.alloc(0) : got.subarray(end + 4);
          if (f.length >= 2 && f.length >= 2 + f[1]!) resolve(decodeResponse(f.subarray(2, 2 + f[1]!)));
        });
      });
      sock.write(Buffer.concat([Buffer.from(head), frame]));
      expect(state(await reply)).toBe('test');
    } finally {
      sock.destroy();
    }
  });
});
