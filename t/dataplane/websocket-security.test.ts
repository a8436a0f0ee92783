/**
 * WebSocket proxying must not become a raw tunnel: client bytes reach the
 * upstream only after it answered 101 (else a refused upgrade leaves a
 * connection on which the client could send requests that skipped routing and
 * plugins), and https upstreams are verified unless tls.verify is false.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { startPlane, type Plane } from './helpers.js';

const UPGRADE = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;

describe('WebSocket proxying is not a tunnel before 101', () => {
  let plane: Plane;
  let refusing: Server;
  const received: string[] = [];

  beforeAll(async () => {
    // Answers every upgrade with a keep-alive 403 and records every byte it gets afterwards.
    refusing = createServer((sock: Socket) => {
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        received.push(d.toString('latin1'));
        if (buf.includes('\r\n\r\n') && !buf.includes('answered')) {
          buf += 'answered';
          sock.write('HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nnope');
        }
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
    plane = await startPlane();
    await plane.put('/apisix/routes/ws', {
      uri: '/ws/*',
      enable_websocket: true,
      upstream: { nodes: { [`127.0.0.1:${(refusing.address() as AddressInfo).port}`]: 1 } },
    });
  });
  afterAll(async () => {
    await plane?.close();
    await new Promise<void>((r) => refusing.close(() => r()));
  });

  it('a refused upgrade is answered, and what the client sends next never reaches the upstream', async () => {
    const sock = connect(plane.port, '127.0.0.1');
    let answer = '';
    sock.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    sock.write(UPGRADE('/ws/chat'));
    for (let i = 0; i < 100 && !answer.includes('nope'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(answer).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    expect(answer.endsWith('nope')).toBe(true);
    // A request smuggled on the same connection after the refusal.
    sock.write('GET /secret HTTP/1.1\r\nHost: internal\r\n\r\n');
    await new Promise((r) => setTimeout(r, 200));
    sock.destroy();
    const all = received.join('');
    expect(all).toContain('GET /ws/chat HTTP/1.1');
    expect(all).not.toContain('/secret');
  });
});

describe('WebSocket proxying to https upstreams verifies certificates by default', () => {
  let dir: string;
  let server: HttpsServer;
  let wss: WebSocketServer;
  let plane: Plane;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portico-wss-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) });
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.on('message', (d) => ws.send(`echo:${d.toString()}`)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const node = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    plane = await startPlane();
    await plane.put('/apisix/routes/verify', { uri: '/verify', enable_websocket: true, upstream: { scheme: 'https', nodes: { [node]: 1 } } });
    await plane.put('/apisix/routes/noverify', {
      uri: '/noverify',
      enable_websocket: true,
      upstream: { scheme: 'https', tls: { verify: false }, nodes: { [node]: 1 } },
    });
  });
  afterAll(async () => {
    await plane?.close();
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const open = (path: string) =>
    new Promise<{ status?: number; echo?: string }>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${plane.port}${path}`);
      ws.once('open', () => {
        ws.once('message', (d) => {
          resolve({ status: 101, echo: d.toString() });
          ws.close();
        });
        ws.send('hi');
      });
      ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
      ws.once('error', () => resolve({}));
    });

  it('a self-signed upstream is refused with 502', async () => {
    expect((await open('/verify')).status).toBe(502);
  });

  it('tls.verify false accepts it', async () => {
    expect(await open('/noverify')).toEqual({ status: 101, echo: 'echo:hi' });
  });
});
