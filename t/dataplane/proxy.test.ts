/**
 * Proxying through real sockets: headers, pass_host, timeouts, retries,
 * upstream faults, streaming, keep-alive and client aborts.
 */
import { createServer as createTcpServer, connect, type Server as TcpServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, send, startPlane, startUpstream, type Plane, type Upstream } from './helpers.js';

/** A loopback port with nothing listening (connect → ECONNREFUSED). */
async function deadPort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function rawTcp(handler: (sock: import('node:net').Socket) => void): Promise<{ port: number; server: TcpServer }> {
  const server = createTcpServer(handler);
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ port: (server.address() as AddressInfo).port, server })));
}

describe('data plane: proxy', () => {
  let plane: Plane;
  let echo: Upstream;
  const closers: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    echo = await startUpstream((req, res, body) => {
      res.setHeader('connection', 'x-resp-hop');
      res.setHeader('x-resp-hop', '1');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url: req.url, headers: req.headers, body: body.toString() }));
    });
    plane = await startPlane();
  });
  afterAll(async () => {
    await plane?.close();
    await echo?.close();
    for (const c of closers) await c();
  });

  const nodes = (...ports: number[]) => Object.fromEntries(ports.map((p) => [`127.0.0.1:${p}`, 1]));

  it('strips hop-by-hop headers both ways and overwrites X-Forwarded-* / X-Real-IP', async () => {
    await plane.put('/apisix/routes/h', { uri: '/h', upstream: { nodes: nodes(echo.port) } });
    const res = await send(plane.port, {
      path: '/h',
      headers: {
        connection: 'keep-alive, x-custom-hop',
        'x-custom-hop': 'secret',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'proxy-authorization': 'Basic eA==',
        'x-forwarded-for': '1.2.3.4',
        'x-real-ip': '6.6.6.6',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-port': '1',
        'x-kept': 'yes',
      },
    });
    expect(res.status).toBe(200);
    const h = JSON.parse(res.body).headers;
    expect(h['x-custom-hop']).toBeUndefined();
    expect(h['keep-alive']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h['x-kept']).toBe('yes');
    // The peer is not in apisix.trusted_addresses, so its X-Forwarded-For is replaced, not extended.
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-real-ip']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('127.0.0.1');
    expect(h['x-forwarded-port']).toBe(String(plane.port));
    expect(res.headers['x-resp-hop']).toBeUndefined();
  });

  // A second Host line is a 400 now (RFC 9112 §3.2; t/dataplane/host-confusion.test.ts): it used to be ignored.
  it('repeated header lines: every Connection line names headers to drop; Host goes as sent', async () => {
    await plane.put('/apisix/routes/h', { uri: '/h', upstream: { nodes: nodes(echo.port) } });
    const reply = await rawRequest(
      plane.port,
      'GET /h HTTP/1.1\r\nHost: first.example:8080\r\n' +
        'Connection: x-hop-a\r\nX-Hop-A: 1\r\nX-Hop-B: 2\r\nConnection: X-Hop-B, close\r\nX-Kept: yes\r\n\r\n',
    );
    expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    const h = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)).headers;
    expect(h.host).toBe('first.example:8080');
    expect(h['x-forwarded-host']).toBe('first.example');
    expect(h['x-hop-a']).toBeUndefined();
    expect(h['x-hop-b']).toBeUndefined();
    expect(h['x-kept']).toBe('yes');
  });

  it('pass_host pass / node / rewrite', async () => {
    await plane.put('/apisix/routes/ph1', { uri: '/ph1', upstream: { nodes: nodes(echo.port), pass_host: 'pass' } });
    await plane.put('/apisix/routes/ph2', { uri: '/ph2', upstream: { nodes: nodes(echo.port), pass_host: 'node' } });
    await plane.put('/apisix/routes/ph3', { uri: '/ph3', upstream: { nodes: nodes(echo.port), pass_host: 'rewrite', upstream_host: 'up.example' } });
    const host = { host: 'client.example:8080' };
    expect(JSON.parse((await send(plane.port, { path: '/ph1', headers: host })).body).headers.host).toBe('client.example:8080');
    expect(JSON.parse((await send(plane.port, { path: '/ph2', headers: host })).body).headers.host).toBe(`127.0.0.1:${echo.port}`);
    expect(JSON.parse((await send(plane.port, { path: '/ph3', headers: host })).body).headers.host).toBe('up.example');
  });

  it('forwards the normalised path re-encoded, and the raw query', async () => {
    await plane.put('/apisix/routes/enc', { uri: '/enc/*', upstream: { nodes: nodes(echo.port) } });
    const res = await send(plane.port, { path: '/enc/a%20b/../c%2541?q=%2F' });
    expect(JSON.parse(res.body).url).toBe('/enc/c%25' + '41?q=%2F');
  });

  it('read timeout → 504 with a JSON body (route timeout overrides the upstream)', async () => {
    const silent = await startUpstream(() => undefined);
    closers.push(() => silent.close());
    await plane.put('/apisix/routes/slow', {
      uri: '/slow',
      timeout: { connect: 1, send: 1, read: 0.3 },
      upstream: { nodes: nodes(silent.port), timeout: { connect: 5, send: 5, read: 30 } },
    });
    const t0 = Date.now();
    const res = await send(plane.port, { path: '/slow' });
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body).error_msg).toMatch(/504/);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a refused node is retried on another node; every request succeeds', async () => {
    const dead = await deadPort();
    await plane.put('/apisix/routes/retry', { uri: '/retry', upstream: { nodes: nodes(dead, echo.port) } });
    for (let i = 0; i < 6; i++) {
      const res = await send(plane.port, { method: 'POST', path: '/retry', body: `n${i}` });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).body).toBe(`n${i}`);
    }
  });

  it('all nodes down → 502 quickly, and retries: 0 disables retrying', async () => {
    const [a, b] = [await deadPort(), await deadPort()];
    await plane.put('/apisix/routes/down', { uri: '/down', upstream: { nodes: nodes(a, b) } });
    const t0 = Date.now();
    const res = await send(plane.port, { path: '/down' });
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body).error_msg).toBeDefined();
    expect(Date.now() - t0).toBeLessThan(1000);
    await plane.put('/apisix/routes/noretry', { uri: '/noretry', upstream: { nodes: nodes(a, echo.port), retries: 0 } });
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) statuses.add((await send(plane.port, { path: '/noretry' })).status);
    expect(statuses).toEqual(new Set([200, 502]));
  });

  it('no usable node (none configured, or only weight 0) → 502 without connecting anywhere', async () => {
    await plane.put('/apisix/routes/empty', { uri: '/empty', upstream: { nodes: {} } });
    await plane.put('/apisix/routes/zero', { uri: '/zero', upstream: { nodes: { [`127.0.0.1:${echo.port}`]: 0 } } });
    const before = echo.seen.length;
    for (const path of ['/empty', '/zero']) {
      const res = await send(plane.port, { path });
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body).error_msg).toBe('no valid upstream node');
    }
    expect(echo.seen.length).toBe(before);
  });

  it('a malformed upstream response → 502; a reset mid-body cuts the client, and the gateway keeps serving', async () => {
    const garbage = await rawTcp((s) => s.on('data', () => s.end('HTTP/1.1 abc nonsense\r\n\r\n')));
    const midbody = await rawTcp((s) =>
      s.once('data', () => {
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial');
        setTimeout(() => s.destroy(), 20);
      }),
    );
    closers.push(() => void garbage.server.close(), () => void midbody.server.close());
    await plane.put('/apisix/routes/garbage', { uri: '/garbage', upstream: { nodes: nodes(garbage.port), retries: 0 } });
    await plane.put('/apisix/routes/midbody', { uri: '/midbody', upstream: { nodes: nodes(midbody.port), retries: 0 } });
    expect((await send(plane.port, { path: '/garbage' })).status).toBe(502);
    const outcome = await send(plane.port, { path: '/midbody' }).then(
      (r) => `status ${r.status} body ${r.body.length}`,
      (e: Error) => `error ${e.message}`,
    );
    expect(outcome === 'error aborted' || outcome.startsWith('error') || outcome === 'status 200 body 7').toBe(true);
    expect(outcome).not.toBe('status 200 body 1000');
    expect((await send(plane.port, { path: '/h' })).status).toBe(200);
  });

  it('reuses upstream keep-alive connections', async () => {
    let connections = 0;
    const counted = await startUpstream((_req, res) => res.end('ok'));
    counted.server.on('connection', () => connections++);
    closers.push(() => counted.close());
    await plane.put('/apisix/routes/ka', { uri: '/ka', upstream: { nodes: nodes(counted.port) } });
    for (let i = 0; i < 20; i++) expect((await send(plane.port, { path: '/ka' })).status).toBe(200);
    expect(connections).toBeLessThanOrEqual(2);
  });

  it('a client abort destroys the upstream request', async () => {
    let upstreamClosed: () => void;
    const closed = new Promise<void>((r) => (upstreamClosed = r));
    const hang = await startUpstream((req) => req.socket.once('close', () => upstreamClosed()), { readBody: false });
    closers.push(() => hang.close());
    await plane.put('/apisix/routes/abort', { uri: '/abort', upstream: { nodes: nodes(hang.port) } });
    const req = httpRequest({ host: '127.0.0.1', port: plane.port, path: '/abort', agent: false });
    req.on('error', () => undefined);
    req.end();
    await new Promise((r) => setTimeout(r, 150));
    req.destroy();
    await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('upstream request not closed')), 2000))]);
  });

  it('rejects CL+TE smuggling at the socket, sending nothing upstream', async () => {
    const before = echo.seen.length;
    const reply = await new Promise<string>((resolve) => {
      const s = connect(plane.port, '127.0.0.1', () => {
        s.write('POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /h HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      let data = '';
      s.on('data', (d) => (data += d));
      s.on('close', () => resolve(data));
      s.on('error', () => resolve(data));
    });
    expect(reply.startsWith('HTTP/1.1 400')).toBe(true);
    expect(echo.seen.length).toBe(before);
  });

  it('a Content-Length body arriving in pieces is relayed whole, and its last piece ends the response', async () => {
    const pieces = ['first-', 'second-', 'third'];
    const total = pieces.join('').length;
    const slow = await startUpstream(
      (_req, res) => {
        res.writeHead(200, { 'content-length': String(total), 'content-type': 'text/plain' });
        let i = 0;
        const next = (): void => {
          res.write(pieces[i++]!);
          if (i < pieces.length) setTimeout(next, 40);
          else res.end();
        };
        next();
      },
      { readBody: false },
    );
    closers.push(() => slow.close());
    await plane.put('/apisix/routes/pieces', { uri: '/pieces', upstream: { nodes: nodes(slow.port) } });
    // Two requests on one keep-alive connection: the second is only answered once the first response ended.
    const reply = await rawRequest(plane.port, 'GET /pieces HTTP/1.1\r\nHost: a\r\n\r\nGET /pieces HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const responses = reply.split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    for (const r of responses) {
      expect(r).toMatch(new RegExp(`^HTTP/1\\.1 200 [^]*\r\ncontent-length: ${total}\r\n`, 'i'));
      expect(r.endsWith('\r\n\r\nfirst-second-third')).toBe(true);
    }
  });

  it('a download waits for a slow client: the upstream is paused, not buffered', async () => {
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 3);
    let written = 0;
    const big = await startUpstream(
      (_req, res) => {
        res.writeHead(200, { 'content-length': String(total) });
        const pump = (): void => {
          while (written < total) {
            written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      },
      { readBody: false },
    );
    closers.push(() => big.close());
    await plane.put('/apisix/routes/download', { uri: '/download', upstream: { nodes: nodes(big.port) } });
    const result = await new Promise<{ status: number; bytes: number; writtenWhilePaused: number }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: plane.port, path: '/download', agent: false }, (res) => {
        res.pause();
        // Not reading for a while: every buffer on the way fills, then the upstream must stop.
        setTimeout(() => {
          const writtenWhilePaused = written;
          let bytes = 0;
          res.on('data', (d: Buffer) => (bytes += d.length));
          res.on('end', () => resolve({ status: res.statusCode!, bytes, writtenWhilePaused }));
          res.resume();
        }, 500);
      });
      req.on('error', reject);
      req.end();
    });
    expect(result.status).toBe(200);
    expect(result.bytes).toBe(total);
    // Socket buffers on three connections hold a few MiB at most; without backpressure the whole body would be written.
    expect(result.writtenWhilePaused).toBeLessThan(total / 4);
  }, 30_000);

  it('streams a 256 MiB upload without buffering it', async () => {
    let received = 0;
    const sink = await startUpstream(
      (req, res) => {
        req.on('data', (c: Buffer) => (received += c.length));
        req.on('end', () => res.end(String(received)));
      },
      { readBody: false },
    );
    closers.push(() => sink.close());
    await plane.put('/apisix/routes/upload', { uri: '/upload', upstream: { nodes: nodes(sink.port) } });
    const total = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(256 * 1024, 7);
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= total) return this.push(null);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: plane.port, method: 'PUT', path: '/upload', agent: false, headers: { 'content-length': String(total) } },
        (res) => {
          let data = '';
          res.on('data', (d) => (data += d));
          res.on('end', () => resolve({ status: res.statusCode!, body: data }));
        },
      );
      req.on('error', reject);
      body.pipe(req);
    });
    clearInterval(sampler);
    expect(result.status).toBe(200);
    expect(Number(result.body)).toBe(total);
    // Client, gateway and upstream share this process: all of them together stay far below the body size.
    expect(peak - rss0).toBeLessThan(96 * 1024 * 1024);
  }, 60_000);
});
