/**
 * Upstream timeouts through real sockets on 127.0.0.1: the route-level
 * `timeout.connect` override (shorter and longer than the upstream's), connect
 * timeouts retried on another node, and `timeout.send` as nginx's
 * proxy_send_timeout (the longest the upstream may refuse body data).
 *
 * A connect that never completes comes from a listener whose accept queue is
 * full: a worker thread listens with backlog 1 and then blocks, so it never
 * accepts; two connections fill the queue and the kernel drops later SYNs.
 */
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startPlane, startUpstream, type Plane, type Upstream } from './helpers.js';

interface StuckListener {
  port: number;
  close(): Promise<void>;
}

/** A 127.0.0.1 port where TCP connects hang: the listener's backlog is full and it never accepts. */
async function stuckListener(): Promise<StuckListener> {
  const release = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const s = require('node:net').createServer();
     s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
       parentPort.postMessage(s.address().port);
       Atomics.wait(workerData, 0, 0); // the event loop never runs again, so nothing is accepted
       s.close();
     });`,
    { eval: true, workerData: release },
  );
  const port = await new Promise<number>((resolve) => worker.once('message', resolve));
  // Fill the accept queue until a connect hangs.
  const fillers: Socket[] = [];
  for (let i = 0; i < 16; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined);
    fillers.push(s);
    const done = await Promise.race([
      new Promise<boolean>((r) => s.once('connect', () => r(true))),
      new Promise<boolean>((r) => setTimeout(() => r(false), 300)),
    ]);
    if (!done) break;
    if (i === 15) throw new Error('could not fill the accept queue');
  }
  return {
    port,
    async close() {
      for (const s of fillers) s.destroy();
      Atomics.store(release, 0, 1);
      Atomics.notify(release, 0);
      await new Promise((r) => worker.once('exit', r));
    },
  };
}

/** A PUT of `total` bytes generated lazily; resolves with the response (status, body, elapsed ms). */
function upload(port: number, path: string, total: number): Promise<{ status: number; body: string; ms: number }> {
  const chunk = Buffer.alloc(64 * 1024, 7);
  let sent = 0;
  const body = new Readable({
    read() {
      if (sent >= total) return this.push(null);
      sent += chunk.length;
      this.push(chunk);
    },
  });
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = httpRequest(
      { host: '127.0.0.1', port, method: 'PUT', path, agent: false, headers: { 'content-length': String(total) } },
      (res) => {
        let data = '';
        res.on('data', (d: Buffer) => (data += d.toString()));
        res.on('end', () => {
          answered = true;
          resolve({ status: res.statusCode!, body: data, ms: Date.now() - t0 });
          req.destroy();
        });
      },
    );
    // The gateway closes the connection after answering a cut-off upload; the write side then fails.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    body.pipe(req);
  });
}

describe('data plane: upstream timeouts', () => {
  let plane: Plane;
  let echo: Upstream;
  let stuck: StuckListener;
  const closers: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    echo = await startUpstream();
    stuck = await stuckListener();
    plane = await startPlane();
  });
  afterAll(async () => {
    await plane?.close();
    await echo?.close();
    await stuck?.close();
    for (const c of closers) await c();
  });

  const nodes = (...ports: number[]) => Object.fromEntries(ports.map((p) => [`127.0.0.1:${p}`, 1]));

  it('a route timeout.connect shorter than the upstream one applies: 504 after it, not after the upstream one', async () => {
    await plane.put('/apisix/routes/conn-short', {
      uri: '/conn-short',
      timeout: { connect: 0.3, send: 5, read: 5 },
      upstream: { nodes: nodes(stuck.port), timeout: { connect: 20, send: 5, read: 5 } },
    });
    const t0 = Date.now();
    const res = await send(plane.port, { path: '/conn-short' });
    const ms = Date.now() - t0;
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body).error_msg).toMatch(/504/);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(3000);
  });

  it('a route timeout.connect longer than the upstream one applies too', async () => {
    // undici runs connect timeouts on its coarse timer (ticks of ~0.5 s), so the two values are far apart.
    await plane.put('/apisix/upstreams/stuck-fast', { nodes: nodes(stuck.port), timeout: { connect: 0.2, send: 5, read: 5 } });
    await plane.put('/apisix/routes/conn-up', { uri: '/conn-up', upstream_id: 'stuck-fast' });
    await plane.put('/apisix/routes/conn-long', { uri: '/conn-long', upstream_id: 'stuck-fast', timeout: { connect: 2, send: 5, read: 5 } });

    let t0 = Date.now();
    let res = await send(plane.port, { path: '/conn-up' });
    expect(res.status).toBe(504);
    expect(Date.now() - t0).toBeLessThan(1700);

    t0 = Date.now();
    res = await send(plane.port, { path: '/conn-long' });
    const ms = Date.now() - t0;
    expect(res.status).toBe(504);
    expect(ms).toBeGreaterThanOrEqual(1950);
    expect(ms).toBeLessThan(5000);
  });

  it('a connect timeout is retried on another node, within the route timeout', async () => {
    await plane.put('/apisix/routes/conn-retry', {
      uri: '/conn-retry',
      timeout: { connect: 0.2, send: 5, read: 5 },
      upstream: { nodes: nodes(stuck.port, echo.port), timeout: { connect: 20, send: 5, read: 5 } },
    });
    const before = echo.seen.length;
    const t0 = Date.now();
    for (let i = 0; i < 4; i++) {
      const res = await send(plane.port, { method: 'POST', path: '/conn-retry', body: `r${i}` });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).body).toBe(`r${i}`);
    }
    expect(echo.seen.length - before).toBe(4);
    // Round robin sends about half of them to the stuck node first: each costs one route connect timeout.
    expect(Date.now() - t0).toBeLessThan(8 * 1000);
  });

  it('timeout.send: an upstream that accepts but never reads the body → 504 after the send timeout, not the read one', async () => {
    const sockets: Socket[] = [];
    const deaf = createTcpServer((sock) => {
      sockets.push(sock);
      sock.pause(); // never read: the kernel buffers fill and the gateway can write no more
    });
    await new Promise<void>((r) => deaf.listen(0, '127.0.0.1', r));
    closers.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => deaf.close(() => r()));
    });
    const port = (deaf.address() as AddressInfo).port;
    await plane.put('/apisix/routes/send', {
      uri: '/send',
      timeout: { connect: 5, send: 0.4, read: 30 },
      upstream: { nodes: nodes(port), timeout: { connect: 5, send: 30, read: 30 } },
    });
    const res = await upload(plane.port, '/send', 256 * 1024 * 1024);
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body).error_msg).toMatch(/504/);
    expect(res.ms).toBeGreaterThanOrEqual(350);
    expect(res.ms).toBeLessThan(5000);
    // The gateway keeps serving.
    expect((await send(plane.port, { path: '/conn-retry' })).status).toBe(200);
  }, 20_000);

  it('timeout.send bounds each stall, not the whole upload: a slow but steady reader gets the full body', async () => {
    const total = 32 * 1024 * 1024;
    const slow = await startUpstream(
      (req, res) => {
        let received = 0;
        req.on('data', (c: Buffer) => {
          received += c.length;
          // Read in steps with short pauses: the gateway is blocked again and again (the kernel
          // reopens the window only when half the receive buffer is free), never for 0.5 s,
          // while the whole upload takes well over 0.5 s.
          req.pause();
          setTimeout(() => req.resume(), 2);
        });
        req.on('end', () => res.end(String(received)));
      },
      { readBody: false },
    );
    closers.push(() => slow.close());
    await plane.put('/apisix/routes/send-slow', {
      uri: '/send-slow',
      timeout: { connect: 5, send: 0.5, read: 30 },
      upstream: { nodes: nodes(slow.port) },
    });
    const res = await upload(plane.port, '/send-slow', total);
    expect(res.status).toBe(200);
    expect(Number(res.body)).toBe(total);
    expect(res.ms).toBeGreaterThan(700);
  }, 30_000);
});
