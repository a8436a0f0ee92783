/**
 * Kafka upstream TLS on the wire (apisix/pubsub/kafka.lua: any `upstream.tls`
 * object turns TLS on, `ssl_verify = tls.verify`, verify defaulting to false;
 * APISIX's t/pubsub/kafka.t cases 5 and 6). librdkafka's mock broker has no TLS listener, so the broker
 * here is a Node TLS server with a self-signed certificate made by openssl for
 * this run. It records what the gateway's Kafka client sends: whether the
 * handshake completed and the decrypted Kafka request bytes. It answers
 * nothing and closes after the first request, so the TLS-on-but-unverified
 * paths end in an ErrorResp here where APISIX (case 5) reads offset 30 from a
 * real broker. A plain TCP server gives the opposite check: without
 * `upstream.tls` the Kafka protocol reaches the wire in clear.
 *
 * Client-visible wording: APISIX answers a failed TLS verification with the
 * same `not found topic` as any unreachable cluster and logs the reason
 * (`self signed certificate`); Portico does the same, so clients written for
 * APISIX see the same string, and the certificate problem is in the gateway's
 * warn log for the operator, not in text handed to WebSocket clients.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, mergeConfig } from '../../src/core/config/file.js';
import type { PubSubResponse } from '../../src/core/pubsub/codec.js';
import { startGateway, type Gateway } from '../../src/gateway.js';
import { closeKafkaBackends } from '../../src/pubsub/index.js';
import { putRoutes } from '../helpers/gateway.js';
import { trackedClients, type PubSubClient } from '../helpers/pubsub-client.js';

const API_VERSIONS = 18;
const METADATA = 3;
const SASL_PASSWORD = 'tls-sasl-pa55word';

/** What one fake broker saw, summed over every connection since the last reset. */
interface Seen {
  /** TCP connections accepted. */
  connections: number;
  /** TLS handshakes that completed (TLS server only). */
  handshakes: number;
  /** TLS handshakes that failed, with Node's reason (TLS server only). */
  handshakeErrors: string[];
  /** Application bytes received (decrypted, for the TLS server). */
  bytes: Buffer;
}

interface FakeBroker {
  port: number;
  seen: Seen;
  reset(): void;
  close(): Promise<void>;
}

function freshSeen(): Seen {
  return { connections: 0, handshakes: 0, handshakeErrors: [], bytes: Buffer.alloc(0) };
}

/** Reads the first Kafka request of a byte stream: int32 size, then int16 api_key, int16 version, int32 correlation id, string client id. */
function firstRequest(bytes: Buffer): { size: number; apiKey: number; clientId: string } | undefined {
  if (bytes.length < 14) return undefined;
  const size = bytes.readInt32BE(0);
  const clientIdLen = bytes.readInt16BE(12);
  return { size, apiKey: bytes.readInt16BE(4), clientId: bytes.subarray(14, 14 + Math.max(0, clientIdLen)).toString('latin1') };
}

/** Kafka's default socket.request.max.bytes: a broker drops a connection announcing more. */
const MAX_REQUEST_BYTES = 100 * 1024 * 1024;

/**
 * Takes the bytes of a connection until one whole Kafka request has arrived,
 * then closes it: a broker that goes away mid-conversation. Like a real
 * broker it also closes on a size no request can have (a TLS ClientHello read
 * as Kafka announces ~370 MB).
 */
function recordAndClose(sock: Socket | TLSSocket, seen: Seen): void {
  let mine = Buffer.alloc(0);
  sock.on('error', () => undefined);
  sock.on('data', (chunk: Buffer) => {
    seen.bytes = Buffer.concat([seen.bytes, chunk]);
    mine = Buffer.concat([mine, chunk]);
    if (mine.length < 4) return;
    const size = mine.readInt32BE(0);
    if (size < 0 || size > MAX_REQUEST_BYTES || mine.length >= 4 + size) sock.destroy();
  });
}

function track(server: TcpServer): () => Promise<void> {
  const open = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  });
  return async () => {
    for (const s of open) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
}

async function listen(server: TcpServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function startTlsBroker(key: Buffer, cert: Buffer): Promise<FakeBroker> {
  const broker = { seen: freshSeen() } as FakeBroker;
  const server: TlsServer = createTlsServer({ key, cert });
  // Raw TCP accepts, counted before any TLS happens.
  server.on('connection', () => void broker.seen.connections++);
  server.on('tlsClientError', (err: Error) => void broker.seen.handshakeErrors.push(err.message));
  server.on('secureConnection', (sock: TLSSocket) => {
    broker.seen.handshakes++;
    recordAndClose(sock, broker.seen);
  });
  const stop = track(server);
  broker.port = await listen(server);
  broker.reset = () => void (broker.seen = freshSeen());
  broker.close = stop;
  return broker;
}

async function startPlainBroker(): Promise<FakeBroker> {
  const broker = { seen: freshSeen() } as FakeBroker;
  const server = createTcpServer((sock) => {
    broker.seen.connections++;
    recordAndClose(sock, broker.seen);
  });
  const stop = track(server);
  broker.port = await listen(server);
  broker.reset = () => void (broker.seen = freshSeen());
  broker.close = stop;
  return broker;
}

let dir: string;
let tlsBroker: FakeBroker;
let plainBroker: FakeBroker;
let gateway: Gateway;
let dataPort: number;
let adminUrl: string;
let adminKey: string;
/** Everything the gateway logged (pino JSON lines). */
let log = '';

async function admin(method: string, path: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(adminUrl + path, {
    method,
    headers: { 'X-API-KEY': adminKey, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

const { open: ws, closeAll: closeClients } = trackedClients(() => dataPort);

function text(r: PubSubResponse): string {
  if ('error_resp' in r) return r.error_resp.message;
  if ('kafka_list_offset_resp' in r) return `offset: ${r.kafka_list_offset_resp.offset}`;
  return JSON.stringify(Object.keys(r));
}

function route(uri: string, port: number, tls?: Record<string, unknown>, sasl = false): Record<string, unknown> {
  return {
    uri,
    plugins: sasl ? { 'kafka-proxy': { sasl: { username: 'admin', password: SASL_PASSWORD } } } : undefined,
    upstream: { nodes: { [`127.0.0.1:${port}`]: 1 }, type: 'none', scheme: 'kafka', ...(tls ? { tls } : {}) },
  };
}

/** list_offset on topic `t`, then a ping on the same session; returns the error text. */
async function listOffsetThenPing(path: string): Promise<string> {
  const c = await ws(path);
  const r = await c.request({ cmd_kafka_list_offset: { topic: 't', partition: 0, timestamp: -1n } }, { timeoutMs: 20_000 });
  expect('error_resp' in r, text(r)).toBe(true);
  const p = await c.request({ cmd_ping: { state: Buffer.from('still here') } });
  expect('pong_resp' in p && Buffer.from(p.pong_resp.state ?? []).toString()).toBe('still here');
  return text(r);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portico-kafka-tls-'));
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ]);
  tlsBroker = await startTlsBroker(readFileSync(join(dir, 'key.pem')), readFileSync(join(dir, 'cert.pem')));
  plainBroker = await startPlainBroker();

  adminKey = randomBytes(16).toString('hex');
  const config = loadConfig({
    overrides: mergeConfig(
      {
        apisix: { node_listen: { ip: '127.0.0.1', port: 0 }, pubsub: { idle_timeout: 0 }, ssl: { enable: false } },
        nginx_config: { worker_processes: 1 },
        deployment: {
          admin: { admin_listen: { ip: '127.0.0.1', port: 0 }, admin_key: [{ name: 'admin', key: adminKey, role: 'admin' }] },
          embedded: { data_dir: join(dir, 'data') },
        },
      },
      {},
    ),
    env: {},
  });
  // The gateway's own logger, captured: the certificate problem must reach the operator.
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      log += chunk.toString('utf8');
      done();
    },
  });
  gateway = await startGateway(config, { logger: pino({ level: 'debug' }, sink), inProcess: true });
  dataPort = gateway.dataAddress.port;
  adminUrl = `http://127.0.0.1:${gateway.adminAddress!.port}`;

  const routes: Array<[string, Record<string, unknown>]> = [
    ['tls-verify', route('/tls-verify', tlsBroker.port, { verify: true })],
    ['tls-noverify', route('/tls-noverify', tlsBroker.port, { verify: false })],
    ['tls-empty', route('/tls-empty', tlsBroker.port, {})],
    ['plain', route('/plain', plainBroker.port)],
    // TLS on against the plaintext broker: what a client sees when it asks for TLS and the broker has none.
    ['tls-on-plain', route('/tls-on-plain', plainBroker.port, { verify: false })],
    ['tls-verify-sasl', route('/tls-verify-sasl', tlsBroker.port, { verify: true }, true)],
    ['tls-noverify-sasl', route('/tls-noverify-sasl', tlsBroker.port, { verify: false }, true)],
  ];
  await putRoutes({ admin }, routes);
}, 30_000);

afterAll(async () => {
  await closeClients();
  await gateway?.close();
  await closeKafkaBackends();
  await tlsBroker?.close();
  await plainBroker?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  tlsBroker.reset();
  plainBroker.reset();
});

describe('upstream.tls with verify: true (kafka.t case 6)', () => {
  it('a self-signed broker certificate fails the handshake: ErrorResp, the reason in the log, the session lives on', async () => {
    const logFrom = log.length;
    const err = await listOffsetThenPing('/tls-verify');
    // APISIX's word for a cluster it could not talk to.
    expect(err).toBe('failed to list offset, topic: t, partition: 0, err: not found topic (brokers unreachable: TLS: self-signed certificate)');

    // The client reached the broker and started TLS, but refused the certificate: no handshake, no Kafka bytes.
    expect(tlsBroker.seen.connections).toBeGreaterThan(0);
    expect(tlsBroker.seen.handshakes).toBe(0);
    expect(tlsBroker.seen.handshakeErrors.length).toBeGreaterThan(0);
    expect(tlsBroker.seen.bytes.length).toBe(0);

    // APISIX's case 6 looks for this in the error log; here it is the gateway's warn line.
    const lines = log.slice(logFrom);
    expect(lines).toMatch(/self[- ]signed certificate/);
    expect(lines).toContain('route: tls-verify');
  });
});

describe('upstream.tls with verify: false (kafka.t case 5)', () => {
  it.each([
    ['{verify: false}', '/tls-noverify'],
    // APISIX: any tls object turns TLS on, and the schema default of verify is false.
    ['{} (verify defaults to false)', '/tls-empty'],
  ])('%s: the handshake completes and the broker gets Kafka requests, decrypted', async (_name, path) => {
    const err = await listOffsetThenPing(path);
    // The broker closes after the first request, so the cluster cannot be reached.
    expect(err).toBe('failed to list offset, topic: t, partition: 0, err: not found topic (brokers unreachable)');

    expect(tlsBroker.seen.handshakes).toBeGreaterThan(0);
    expect(tlsBroker.seen.handshakeErrors).toEqual([]);
    const req = firstRequest(tlsBroker.seen.bytes);
    expect(req, 'a whole Kafka request header').toBeDefined();
    expect([API_VERSIONS, METADATA]).toContain(req!.apiKey);
    expect(req!.size).toBeGreaterThan(0);
    expect(req!.clientId).toBe('portico');
  });

  it('the same broker with verify on and off are separate connections: off does not open the door for on', async () => {
    // Both routes point at one address; sharing a client between them would let an unverified session serve a verifying one.
    await listOffsetThenPing('/tls-noverify');
    expect(tlsBroker.seen.handshakes).toBeGreaterThan(0);
    tlsBroker.reset();
    await listOffsetThenPing('/tls-verify');
    expect(tlsBroker.seen.handshakes).toBe(0);
    expect(tlsBroker.seen.bytes.length).toBe(0);
  });

  it('TLS asked of a plaintext broker: the broker sees a TLS ClientHello, not Kafka, and the client gets an ErrorResp', async () => {
    const err = await listOffsetThenPing('/tls-on-plain');
    expect(err).toBe('failed to list offset, topic: t, partition: 0, err: not found topic (brokers unreachable)');
    // A TLS record of type handshake (22), version 3.x.
    expect(plainBroker.seen.bytes[0]).toBe(0x16);
    expect(plainBroker.seen.bytes[1]).toBe(0x03);
    expect(plainBroker.seen.bytes.includes(Buffer.from('portico'))).toBe(false);
  });
});

describe('no upstream.tls', () => {
  it('the Kafka protocol reaches the wire in clear', async () => {
    const err = await listOffsetThenPing('/plain');
    expect(err).toBe('failed to list offset, topic: t, partition: 0, err: not found topic (brokers unreachable)');
    const req = firstRequest(plainBroker.seen.bytes);
    expect(req).toBeDefined();
    expect([API_VERSIONS, METADATA]).toContain(req!.apiKey);
    expect(req!.clientId).toBe('portico');
    expect(tlsBroker.seen.connections).toBe(0);
  });

  it('a plaintext client against the TLS broker: the broker sees no TLS handshake completed', async () => {
    // The TLS broker, addressed without upstream.tls, gets Kafka bytes it cannot read as a ClientHello.
    const res = await admin('PUT', '/apisix/admin/routes/plain-on-tls', route('/plain-on-tls', tlsBroker.port));
    expect(res.status, res.text).toBeLessThan(300);
    const err = await listOffsetThenPing('/plain-on-tls');
    expect(err).toBe('failed to list offset, topic: t, partition: 0, err: not found topic (brokers unreachable)');
    expect(tlsBroker.seen.connections).toBeGreaterThan(0);
    expect(tlsBroker.seen.handshakes).toBe(0);
    expect(tlsBroker.seen.handshakeErrors.length).toBeGreaterThan(0);
  });
});

describe('SASL passwords stay out of TLS failures', () => {
  it.each([['/tls-verify-sasl'], ['/tls-noverify-sasl']])('%s: neither the ErrorResp nor the log holds the password', async (path) => {
    const logFrom = log.length;
    const err = await listOffsetThenPing(path);
    expect(err).toMatch(/^failed to list offset, topic: t, partition: 0, err: /);
    expect(err).not.toContain(SASL_PASSWORD);
    expect(log.slice(logFrom)).not.toContain(SASL_PASSWORD);
  });
});

describe('the gateway keeps serving', () => {
  it('after every TLS failure, new sessions open and the Admin API answers', async () => {
    const c = await ws('/tls-verify');
    const p = await c.request({ cmd_ping: { state: Buffer.from('again') } });
    expect('pong_resp' in p).toBe(true);
    const res = await fetch(`${adminUrl}/apisix/admin/routes/tls-verify`, { headers: { 'X-API-KEY': adminKey } });
    expect(res.status).toBe(200);
  });
});
