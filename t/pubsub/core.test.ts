/**
 * The pub/sub session through real sockets: a node:http server on port 0
 * hands requests to a SchemeHandler exactly as the data plane does, and the
 * handler opens a PubSubSession. Mirrors APISIX's t/pubsub/pubsub.t (the
 * serverless route whose cmd_ping answers "test" and fails otherwise), then
 * drives the faults APISIX does not survive.
 */
import { connect as netConnect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openPubSub, type PubSubLogger, type PubSubSession, type PubSubSessionOptions } from '../../src/core/pubsub/session.js';
import { decodeResponse, encodeRequest, maxBodyBytes, type PubSubResponse } from '../../src/core/pubsub/codec.js';
import type { SchemeHandler } from '../../src/core/pubsub/scheme-handler.js';
import { connect, startSchemeServer, type PubSubClient, type SchemeTestServer } from '../helpers/pubsub-client.js';

interface Recorder {
  logs: string[];
  sessions: PubSubSession[];
  ended: number;
}

function recorder(): Recorder & { logger: PubSubLogger } {
  const r: Recorder & { logger: PubSubLogger } = {
    logs: [],
    sessions: [],
    ended: 0,
    logger: {
      debug: (m) => r.logs.push(`debug: ${m}`),
      warn: (m) => r.logs.push(`warn: ${m}`),
      error: (m) => r.logs.push(`error: ${m}`),
    },
  };
  return r;
}

/** The route of pubsub.t TEST 1, plus hooks for the extra cases. */
function testRoute(rec: ReturnType<typeof recorder>, setup?: (s: PubSubSession) => void, opts: Partial<PubSubSessionOptions> = {}): SchemeHandler {
  return async (request) => {
    const session = await openPubSub(request, { logger: rec.logger, ...opts });
    if (!session) return;
    rec.sessions.push(session);
    session.on('cmd_ping', async (params) => {
      if (Buffer.from(params.state).toString() === 'test') return { pong_resp: { state: Buffer.from('test') } };
      throw new Error('error');
    });
    setup?.(session);
    await session.wait();
    rec.ended++;
  };
}

const state = (r: PubSubResponse | undefined): string | undefined => (r && 'pong_resp' in r ? Buffer.from(r.pong_resp.state ?? []).toString() : undefined);
const errorOf = (r: PubSubResponse | undefined): string | undefined => (r && 'error_resp' in r ? r.error_resp.message : undefined);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

const clients: PubSubClient[] = [];
async function client(url: string): Promise<PubSubClient> {
  const c = await connect(url);
  clients.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe('t/pubsub/pubsub.t mirrored', () => {
  const rec = recorder();
  let srv: SchemeTestServer;
  beforeAll(async () => {
    srv = await startSchemeServer(testRoute(rec));
  });
  afterAll(() => srv.close());

  it('2: a plain GET is refused with 400 and a JSON error naming the header', async () => {
    const res = await fetch(`${srv.httpUrl}/pubsub`);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/json/);
    expect(await res.json()).toEqual({ error_msg: 'failed to initialize pubsub module: a WebSocket upgrade is required (bad "upgrade" request header: nil)' });
    expect(rec.logs).toContain('warn: failed to initialize pubsub module, err: bad "upgrade" request header: nil');
  });

  it('3: ping with state "test" gets pong "test" with sequence 0', async () => {
    const c = await client(`${srv.wsUrl}/pubsub`);
    const r = await c.request({ cmd_ping: { state: Buffer.from('test') } }, { sequence: 0n });
    expect(r.sequence).toBe(0n);
    expect(state(r)).toBe('test');
  });

  it('4: ping with another state gets the handler error "error", code 0', async () => {
    const c = await client(`${srv.wsUrl}/pubsub`);
    const r = await c.request({ cmd_ping: { state: Buffer.from('non-test') } }, { sequence: 0n });
    expect(r).toEqual({ sequence: 0n, error_resp: { code: 0, message: 'error' } });
  });

  it('5: cmd_empty has no handler: "unknown command" with the request sequence', async () => {
    const c = await client(`${srv.wsUrl}/pubsub`);
    const r = await c.request({ cmd_empty: {} }, { sequence: 0n });
    expect(errorOf(r)).toBe('unknown command');
    const r2 = await c.request({ cmd_empty: {} }, { sequence: 77n });
    expect(r2).toEqual({ sequence: 77n, error_resp: { code: 0, message: 'unknown command' } });
    expect(rec.logs).toContain('error: pubsub callback handler not registered for the command, command: cmd_empty');
  });

  it('6: a text frame gets no answer, and the session carries on', async () => {
    const c = await client(`${srv.wsUrl}/pubsub`);
    c.sendRaw('test');
    expect(await c.next(300)).toBeUndefined();
    expect(rec.logs).toContain('warn: pubsub server receive non-binary data, type: text, data: test');
    expect(state(await c.request({ cmd_ping: { state: Buffer.from('test') } }))).toBe('test');
  });

  it('7: an empty binary frame (the encoding of {}) gets no answer', async () => {
    const c = await client(`${srv.wsUrl}/pubsub`);
    const before = rec.logs.filter((l) => l.includes('receives empty command')).length;
    c.sendRaw(encodeRequest({} as never));
    expect(await c.next(300)).toBeUndefined();
    expect(rec.logs.filter((l) => l.includes('receives empty command')).length).toBe(before + 1);
    expect(state(await c.request({ cmd_ping: { state: Buffer.from('test') } }))).toBe('test');
  });

  it('8: "!@#$%^&*中文" is reported as "wrong command" with sequence 0 and the socket stays open', async () => {
    // Deviation by design: APISIX's lua-protobuf reads this as an empty request and stays silent; the bytes
    // end in a cut-short varint, so we say so instead of leaving the client waiting.
    const c = await client(`${srv.wsUrl}/pubsub`);
    c.sendRaw(Buffer.from('!@#$%^&*中文'));
    expect(await c.next(2000)).toEqual({ sequence: 0n, error_resp: { code: 0, message: 'wrong command' } });
    expect(rec.logs.some((l) => l.startsWith('warn: pubsub server receives undecodable data, err: '))).toBe(true);
    expect(state(await c.request({ cmd_ping: { state: Buffer.from('test') } }))).toBe('test');
  });
});

describe('protocol faults and extras', () => {
  const rec = recorder();
  let srv: SchemeTestServer;
  const aborted: string[] = [];
  beforeAll(async () => {
    srv = await startSchemeServer(
      testRoute(rec, (s) => {
        s.on('cmd_kafka_list_offset', async (p, ctx) => {
          if (p.topic === 'budget') return { kafka_list_offset_resp: { offset: BigInt(ctx.maxBytes) } };
          if (p.topic === 'hang') {
            await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
            aborted.push(`seq ${ctx.sequence}`);
            return { kafka_list_offset_resp: { offset: 0n } };
          }
          if (p.topic === 'big') return { pong_resp: { state: Buffer.alloc(Number(p.timestamp), 7) } };
          // answer after `partition` ms, so later requests may finish first if we were not ordering
          await sleep(p.partition);
          return { kafka_list_offset_resp: { offset: p.timestamp } };
        });
      }, { maxFrameSize: 4096 }),
    );
  });
  afterAll(() => srv.close());

  it('a broken frame gets "wrong command" with sequence 0; the next ping still works', async () => {
    const c = await client(srv.wsUrl);
    for (const h of ['82 02 05 0a 04', '0a 01 00', '08 ff', '0f']) {
      c.sendRaw(Buffer.from(h.replace(/ /g, ''), 'hex'));
      expect(await c.next(2000)).toEqual({ sequence: 0n, error_resp: { code: 0, message: 'wrong command' } });
    }
    const r = await c.request({ cmd_ping: { state: Buffer.from('test') } }, { sequence: 12n });
    expect(r.sequence).toBe(12n);
    expect(state(r)).toBe('test');
  });

  it('a command number this proto does not know gets "unknown command" with its sequence', async () => {
    const c = await client(srv.wsUrl);
    c.sendRaw(Buffer.from('0805c20200', 'hex')); // sequence 5, field 40 (empty message)
    expect(await c.next(2000)).toEqual({ sequence: 5n, error_resp: { code: 0, message: 'unknown command' } });
  });

  it('huge and negative int64 sequences and values come back exactly', async () => {
    const c = await client(srv.wsUrl);
    for (const v of [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -1n]) {
      const r = await c.request({ cmd_kafka_list_offset: { topic: 't', partition: 0, timestamp: v } }, { sequence: v });
      expect(r).toEqual({ sequence: v, kafka_list_offset_resp: { offset: v } });
    }
  });

  it('responses leave in request order even when later handlers finish first', async () => {
    const c = await client(srv.wsUrl);
    const order: bigint[] = [];
    c.ws.on('message', (d: Buffer) => order.push(decodeResponse(d).sequence));
    const delays = [40, 5, 30, 0, 20, 1, 10, 0, 25, 3];
    const replies = await Promise.all(
      delays.map((ms, i) => c.request({ cmd_kafka_list_offset: { topic: 't', partition: ms, timestamp: BigInt(i) } }, { sequence: BigInt(i + 100) })),
    );
    replies.forEach((r, i) => expect(r).toEqual({ sequence: BigInt(i + 100), kafka_list_offset_resp: { offset: BigInt(i) } }));
    expect(order).toEqual(delays.map((_, i) => BigInt(i + 100)));
  });

  it('handlers get the response budget; a response over the frame limit becomes an ErrorResp, not a dead session', async () => {
    const c = await client(srv.wsUrl);
    const budget = await c.request({ cmd_kafka_list_offset: { topic: 'budget' } });
    expect(budget).toMatchObject({ kafka_list_offset_resp: { offset: BigInt(maxBodyBytes(4096)) } });
    const fits = await c.request({ cmd_kafka_list_offset: { topic: 'big', timestamp: 4000n } });
    expect(state(fits)?.length).toBe(4000);
    const tooBig = await c.request({ cmd_kafka_list_offset: { topic: 'big', timestamp: 5000n } }, { sequence: 9n });
    expect(tooBig.sequence).toBe(9n);
    expect(errorOf(tooBig)).toMatch(/^response too large: \d+ bytes exceeds max frame size 4096$/);
    expect(state(await c.request({ cmd_ping: { state: Buffer.from('test') } }))).toBe('test');
  });

  it('a frame over the limit is refused by ws with close code 1009 and ends the session', async () => {
    const c = await client(srv.wsUrl);
    const endedBefore = rec.ended;
    c.sendRaw(Buffer.alloc(5000, 1));
    expect(await c.closed()).toBe(1009);
    await until(() => rec.ended > endedBefore);
  });

  it('a WebSocket ping frame gets no pub/sub answer', async () => {
    const c = await client(srv.wsUrl);
    c.ws.ping();
    expect(await c.next(300)).toBeUndefined();
  });

  it('closing the socket aborts the in-flight handler and ends wait()', async () => {
    const c = await client(srv.wsUrl);
    const endedBefore = rec.ended;
    c.request({ cmd_kafka_list_offset: { topic: 'hang' } }, { sequence: 31n }).catch(() => {});
    await sleep(50);
    await c.close();
    await until(() => rec.ended > endedBefore && aborted.includes('seq 31'));
  });

  it('a frame sent together with the upgrade request is not lost', async () => {
    // Raw TCP: the handshake and a masked binary frame in one write, before any 101 arrives.
    const payload = Buffer.from(encodeRequest({ sequence: 4n, cmd_ping: { state: Buffer.from('test') } }));
    const mask = Buffer.from([1, 2, 3, 4]);
    const frame = Buffer.concat([Buffer.from([0x82, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
    const head = `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const sock = netConnect(srv.port, '127.0.0.1');
    try {
      let got = Buffer.alloc(0);
      const reply = new Promise<PubSubResponse>((resolve, reject) => {
        setTimeout(() => reject(new Error('no answer to the frame sent with the handshake')), 3000);
        sock.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d]);
          const end = got.indexOf('\r\n\r\n');
          if (end < 0) return;
          const f = got.subarray(end + 4);
          if (f.length >= 2 && f.length >= 2 + f[1]!) resolve(decodeResponse(f.subarray(2, 2 + f[1]!)));
        });
      });
      sock.write(Buffer.concat([Buffer.from(head), frame]));
      const r = await reply;
      expect(got.subarray(0, 12).toString()).toBe('HTTP/1.1 101');
      expect(r.sequence).toBe(4n);
      expect(state(r)).toBe('test');
    } finally {
      sock.destroy();
    }
  });
});

describe('session lifetime', () => {
  it('an idle session is closed with 1001; one that keeps pinging stays open', async () => {
    const rec = recorder();
    const srv = await startSchemeServer(testRoute(rec), { maxFrameSize: 65535, idleTimeoutMs: 250 });
    try {
      const idle = await client(srv.wsUrl);
      const busy = await client(srv.wsUrl);
      const started = Date.now();
      for (let i = 0; i < 6; i++) {
        await sleep(100);
        expect(state(await busy.request({ cmd_ping: { state: Buffer.from('test') } }))).toBe('test');
      }
      expect(await idle.closed()).toBe(1001);
      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
      expect(busy.ws.readyState).toBe(busy.ws.OPEN);
      expect(rec.logs.some((l) => l.includes('idle for 250 ms'))).toBe(true);
    } finally {
      await srv.close();
    }
  });

  it('an aborted signal (gateway shutdown) closes the session with 1001', async () => {
    const rec = recorder();
    const shutdown = new AbortController();
    const srv = await startSchemeServer(testRoute(rec, undefined, { signal: shutdown.signal }));
    try {
      const c = await client(srv.wsUrl);
      expect(state(await c.request({ cmd_ping: { state: Buffer.from('test') } }))).toBe('test');
      shutdown.abort();
      expect(await c.closed()).toBe(1001);
      await until(() => rec.ended === 1);
    } finally {
      await srv.close();
    }
  });

  it('200 concurrent sessions stay isolated: one client’s garbage never reaches another', async () => {
    const rec = recorder();
    const srv = await startSchemeServer(
      testRoute(rec, (s) => s.on('cmd_ping', async (p) => ({ pong_resp: { state: p.state } }))),
    );
    try {
      const cs = await Promise.all(Array.from({ length: 200 }, () => connect(srv.wsUrl)));
      clients.push(...cs);
      const results = await Promise.all(
        cs.map(async (c, i) => {
          if (i % 2 === 1) c.sendRaw(Buffer.from('82020a', 'hex')); // cut short
          const r = await c.request({ cmd_ping: { state: Buffer.from(`client-${i}`) } }, { sequence: BigInt(i) });
          const stray = await c.next(i % 2 === 1 ? 2000 : 50);
          return { i, seq: r.sequence, st: state(r), stray };
        }),
      );
      for (const { i, seq, st, stray } of results) {
        expect(seq).toBe(BigInt(i));
        expect(st).toBe(`client-${i}`);
        if (i % 2 === 1) expect(stray).toEqual({ sequence: 0n, error_resp: { code: 0, message: 'wrong command' } });
        else expect(stray).toBeUndefined();
      }
      expect(cs.every((c) => c.ws.readyState === c.ws.OPEN)).toBe(true);
      expect(rec.sessions.length).toBe(200);
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      await srv.close();
    }
  });
});

describe('backpressure', () => {
  it('a client that stops reading pauses the session instead of growing its send buffer', async () => {
    const rec = recorder();
    let calls = 0;
    const value = Buffer.alloc(60_000, 0x61);
    const srv = await startSchemeServer(
      testRoute(rec, (s) =>
        s.on('cmd_kafka_fetch', async (p) => {
          calls++;
          return { kafka_fetch_resp: { messages: [{ offset: p.offset, timestamp: 1n, value }] } };
        }),
      ),
    );
    try {
      const c = await client(srv.wsUrl);
      c.ws.pause(); // stop reading: the kernel buffers fill, then the server's
      const total = 400; // 24 MB of answers, more than loopback socket buffers hold
      const replies = Array.from({ length: total }, (_, i) => c.request({ cmd_kafka_fetch: { topic: 't', offset: BigInt(i) } }, { timeoutMs: 20_000 }));
      await until(() => srv.sockets.size === 1);
      const [server] = [...srv.sockets];
      let maxBuffered = 0;
      let sawPaused = false;
      const sampler = setInterval(() => {
        maxBuffered = Math.max(maxBuffered, server!.bufferedAmount);
        sawPaused ||= server!.isPaused;
      }, 2);
      await sleep(800);
      const callsWhileStalled = calls;
      expect(callsWhileStalled).toBeLessThan(total);
      await sleep(200);
      expect(calls).toBe(callsWhileStalled); // nothing more is produced while the client does not read
      expect(sawPaused).toBe(true);
      // high-water mark (64 KiB) plus at most one frame
      expect(maxBuffered).toBeLessThanOrEqual(65536 + 65535);
      c.ws.resume();
      const got = await Promise.all(replies);
      clearInterval(sampler);
      got.forEach((r, i) => expect(r).toMatchObject({ kafka_fetch_resp: { messages: [{ offset: BigInt(i) }] } }));
      expect(calls).toBe(total);
      expect(maxBuffered).toBeLessThanOrEqual(65536 + 65535);
    } finally {
      await srv.close();
    }
  });
});
