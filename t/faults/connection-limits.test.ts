/**
 * Connections that send nothing cost a bounded time and a bounded number of
 * descriptors: nginx's client_header_timeout closes one that has not sent a
 * complete request head, and worker_connections caps what one process holds
 * (the rest are closed as they arrive, said in the log).
 */
import { connect, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

/** Resolves with the ms from now until the socket closes, and whatever it received. */
function silent(port: number, send = ''): Promise<{ socket: Socket; closed: Promise<{ ms: number; data: string }> }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (d) => (data += d.toString()));
    const closed = new Promise<{ ms: number; data: string }>((r) => socket.on('close', () => r({ ms: Date.now() - started, data })));
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      if (send) socket.write(send);
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

describe('client_header_timeout', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ config: { nginx_config: { http: { client_header_timeout: '400ms' } } } });
  });
  afterAll(() => gw?.close());

  test('silent connections and half-sent heads are closed, unanswered, between 1 and ~1.5 times the timeout', async () => {
    const conns = await Promise.all([
      ...Array.from({ length: 50 }, () => silent(gw.dataPort)),
      ...Array.from({ length: 10 }, () => silent(gw.dataPort, 'GET / HTTP/1.1\r\nHost: example.com\r\nX-Slow: ')),
    ]);
    const results = await Promise.all(conns.map((c) => c.closed));
    for (const r of results) {
      expect(r.data).toBe('');
      expect(r.ms).toBeGreaterThanOrEqual(350);
      expect(r.ms).toBeLessThan(5_000);
    }
  });

  test('a request sent in time is answered, and the connection is kept', async () => {
    const c = await silent(gw.dataPort, 'GET /nowhere HTTP/1.1\r\nHost: example.com\r\n\r\n');
    await new Promise((r) => setTimeout(r, 200));
    // The 404 for an unknown route came on an open connection.
    const open = await Promise.race([c.closed.then(() => false), new Promise((r) => setTimeout(() => r(true), 100))]);
    expect(open).toBe(true);
    c.socket.destroy();
    const { data } = await c.closed;
    expect(data).toMatch(/^HTTP\/1\.1 404 /);
  });
});

describe('worker_connections', () => {
  let gw: TestGateway;
  const lines: string[] = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    gw = await startTestGateway({ config: { nginx_config: { event: { worker_connections: 20 } } }, logger: pino({ level: 'warn' }, sink) });
  });
  afterAll(() => gw?.close());

  test('beyond the cap new connections are closed at once, the held ones stay, and the log says why', async () => {
    const held = await Promise.all(Array.from({ length: 20 }, () => silent(gw.dataPort)));
    await new Promise((r) => setTimeout(r, 100));
    const extra = await Promise.all(Array.from({ length: 5 }, () => silent(gw.dataPort)));
    const refused = await Promise.all(extra.map((c) => Promise.race([c.closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2_000))])));
    for (const r of refused) expect(r, 'a connection beyond the cap stayed open').toBeDefined();
    // The held ones are still open (the 60 s head timeout is far off).
    const stillOpen = held.filter((c) => !c.socket.destroyed && c.socket.readyState === 'open');
    expect(stillOpen).toHaveLength(20);
    const log = lines.join('');
    expect(log).toContain('connection limit reached: data plane (HTTP) holds 20 connections (nginx_config.event.worker_connections); closing new ones');
    expect(log.match(/connection limit reached/g)).toHaveLength(1);

    for (const c of held) c.socket.destroy();
    await Promise.all(held.map((c) => c.closed));
    // Below the cap again: served.
    const res = await fetch(`${gw.dataUrl}/nowhere`);
    expect(res.status).toBe(404);
  });
});
