/**
 * The core's subscription loop (src/core/pubsub/subscriptions.ts) through a
 * real WebSocket, with an endless in-memory source: what a session holds when
 * the client grants a lot and then stops reading, measured on the server's
 * socket and in how far the source was read.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaMessage } from '../../src/core/pubsub/codec.js';
import { openPubSub } from '../../src/core/pubsub/session.js';
import { serveSubscriptions, type SubscriptionSource } from '../../src/core/pubsub/subscriptions.js';
import { body, connect, startSchemeServer, type SchemeTestServer } from '../helpers/pubsub-client.js';

const FRAME = 64 * 1024;
const VALUE = Buffer.alloc(1000, 'v');
let server: SchemeTestServer;
/** The highest offset the source was asked for. */
let polledUpTo = 0n;

const endless: SubscriptionSource = {
  resolveOffset: async (_t, _p, offset) => (offset < 0n ? 0n : offset),
  poll: async (_t, _p, offset, lim) => {
    const out: KafkaMessage[] = [];
    let bytes = 0;
    for (let o = offset; out.length < lim.maxMessages && bytes < lim.maxBytes; o++) {
      out.push({ offset: o, timestamp: 1n, value: VALUE });
      bytes += VALUE.length;
    }
    polledUpTo = offset + BigInt(out.length);
    return out;
  },
};

beforeAll(async () => {
  server = await startSchemeServer(
    async (request) => {
      const session = await openPubSub(request, { highWaterMark: 256 * 1024 });
      if (!session) return;
      serveSubscriptions(session, endless);
      await session.wait();
    },
    { maxFrameSize: FRAME, idleTimeoutMs: 0 },
  );
});

afterAll(async () => {
  await server?.close();
});

describe('a client that stops reading', () => {
  it('keeps the session bounded: the send buffer stays near the high-water mark and the source is not read ahead', async () => {
    const c = await connect(server.wsUrl);
    const sub = body(await c.request({ cmd_subscribe: { topic: 't', offset: 0n, credit_messages: 10_000_000n } }), 'subscribe_resp');
    expect(sub.subscription).toBe(1);
    // Stop reading: the kernel buffers fill, then the gateway's socket buffer, then the loop must wait.
    (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    await new Promise((r) => setTimeout(r, 1500));
    const [ws] = [...server.sockets];
    const buffered = ws!.bufferedAmount;
    const readAt = polledUpTo;
    await new Promise((r) => setTimeout(r, 1000));
    // Nothing more was read from the source while the client did not read...
    expect(polledUpTo).toBe(readAt);
    // ...and what waits in the gateway is at most the high-water mark plus one frame.
    expect(buffered).toBeLessThanOrEqual(256 * 1024 + FRAME);
    // Far less than the 10,000,000 messages granted were taken from the source.
    expect(readAt).toBeLessThan(50_000n);
    console.log(`client stopped reading: ${buffered} bytes buffered in the session, ${readAt} messages read from the source`);
    // Paused, the client's socket would never see its own close; drop it.
    c.ws.terminate();
  }, 15_000);
});
