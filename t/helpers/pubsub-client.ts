/**
 * A small pub/sub test client: ws + the codec. Requests get increasing
 * sequences (from 1) unless one is given, and are matched to responses by
 * sequence, so several can be in flight. Responses nobody waits for (e.g.
 * `wrong command` with sequence 0 after a raw frame) queue up for `next()`.
 */
import { WebSocket } from 'ws';
import {
  decodeResponse,
  encodeRequest,
  type KafkaMessage,
  type PubSubRequestBody,
  type PubSubResponse,
  type ResponseBodies,
} from '../../src/core/pubsub/codec.js';

export interface PubSubClient {
  readonly ws: WebSocket;
  /** Sends a request and resolves with the response carrying its sequence; rejects after `timeoutMs` (default 5000) or on close. */
  request(body: PubSubRequestBody, opts?: { sequence?: bigint; timeoutMs?: number }): Promise<PubSubResponse>;
  /** Sends raw bytes (binary) or a string (text frame). */
  sendRaw(data: Uint8Array | string): void;
  /** The next response no request waited for, or undefined after `timeoutMs` (default 1000). */
  next(timeoutMs?: number): Promise<PubSubResponse | undefined>;
  /** Resolves with the close code once the socket is closed. */
  closed(): Promise<number>;
  close(): Promise<void>;
}

export async function connect(url: string, headers?: Record<string, string>): Promise<PubSubClient> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  const waiters = new Map<bigint, { resolve: (r: PubSubResponse) => void; reject: (e: Error) => void }>();
  const unmatched: PubSubResponse[] = [];
  const unmatchedWaiters: Array<(r: PubSubResponse | undefined) => void> = [];
  let nextSeq = 1n;
  let closeCode: number | undefined;
  const closeWaiters: Array<(code: number) => void> = [];

  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) return;
    const resp = decodeResponse(data);
    const w = waiters.get(resp.sequence);
    if (w) {
      waiters.delete(resp.sequence);
      w.resolve(resp);
      return;
    }
    const u = unmatchedWaiters.shift();
    if (u) u(resp);
    else unmatched.push(resp);
  });
  ws.on('close', (code: number) => {
    closeCode = code;
    for (const w of waiters.values()) w.reject(new Error(`pubsub socket closed (${code})`));
    waiters.clear();
    for (const u of unmatchedWaiters.splice(0)) u(undefined);
    for (const c of closeWaiters.splice(0)) c(code);
  });

  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
  ws.on('error', () => {}); // surfaced through 'close'

  return {
    ws,
    request(body, opts = {}) {
      const sequence = opts.sequence ?? nextSeq++;
      return new Promise<PubSubResponse>((resolve, reject) => {
        if (closeCode !== undefined) return reject(new Error(`pubsub socket closed (${closeCode})`));
        const timer = setTimeout(() => {
          waiters.delete(sequence);
          reject(new Error(`no response for sequence ${sequence}`));
        }, opts.timeoutMs ?? 5000);
        waiters.set(sequence, {
          resolve: (r) => (clearTimeout(timer), resolve(r)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
        ws.send(encodeRequest({ ...body, sequence }));
      });
    },
    sendRaw(data) {
      ws.send(data, { binary: typeof data !== 'string' });
    },
    next(timeoutMs = 1000) {
      const r = unmatched.shift();
      if (r || closeCode !== undefined) return Promise.resolve(r);
      return new Promise((resolve) => {
        const waiter = (x: PubSubResponse | undefined): void => (clearTimeout(timer), resolve(x));
        const timer = setTimeout(() => {
          const i = unmatchedWaiters.indexOf(waiter);
          if (i >= 0) unmatchedWaiters.splice(i, 1);
          resolve(undefined);
        }, timeoutMs);
        unmatchedWaiters.push(waiter);
      });
    },
    closed() {
      if (closeCode !== undefined) return Promise.resolve(closeCode);
      return new Promise((resolve) => closeWaiters.push(resolve));
    },
    async close() {
      if (closeCode !== undefined) return;
      const done = new Promise<void>((resolve) => closeWaiters.push(() => resolve()));
      ws.close();
      const t = setTimeout(() => ws.terminate(), 2000);
      await done;
      clearTimeout(t);
    },
  };
}

/**
 * The pub/sub clients of one test file on a data plane: `open(path)` connects and keeps the client,
 * `closeAll()` (in afterAll) closes every one still kept.
 */
export function trackedClients(dataPort: () => number): { open(path: string): Promise<PubSubClient>; closeAll(): Promise<void> } {
  const clients: PubSubClient[] = [];
  return {
    async open(path) {
      const c = await connect(`ws://127.0.0.1:${dataPort()}${path}`);
      clients.push(c);
      return c;
    },
    async closeAll() {
      await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
    },
  };
}

/** The response's `member`, or a thrown error naming what came instead (the error_resp's message). */
export function body<K extends keyof ResponseBodies>(r: PubSubResponse, member: K): ResponseBodies[K] {
  if ('error_resp' in r && member !== 'error_resp') throw new Error(`error_resp: ${r.error_resp.message}`);
  if (!(member in r)) throw new Error(`expected ${member}, got ${Object.keys(r).join(',')}`);
  return (r as unknown as Record<K, ResponseBodies[K]>)[member];
}

/** Collects pushed messages (push_resp frames) until `n` arrived or `ms` passed; a push error throws. */
export async function pushed(c: PubSubClient, n: number, ms = 5000): Promise<KafkaMessage[]> {
  const out: KafkaMessage[] = [];
  const end = Date.now() + ms;
  while (out.length < n && Date.now() < end) {
    const r = await c.next(Math.max(1, end - Date.now()));
    if (!r) break;
    const p = body(r, 'push_resp');
    if (p.error) throw new Error(`push error: ${p.error}`);
    out.push(...p.messages);
  }
  return out;
}

// ---------------------------------------------------------------- test server

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import type { DataKey } from '../../src/core/plugin/ctx.js';
import type { SchemeHandler, SchemeRequest } from '../../src/core/pubsub/scheme-handler.js';

export interface SchemeTestServer {
  /** ws://127.0.0.1:<port> */
  readonly wsUrl: string;
  /** http://127.0.0.1:<port> */
  readonly httpUrl: string;
  readonly port: number;
  /** Server-side sockets currently open. */
  readonly sockets: Set<WebSocket>;
  close(): Promise<void>;
}

/**
 * A plain node:http server on port 0 that hands every request to a
 * SchemeHandler the way the data plane does (SchemeRequest with accept and
 * reject), so pub/sub code is tested through real sockets without a gateway.
 * `accept()` pauses the socket before resolving, so a frame that arrived
 * with the upgrade request waits for the session's listeners.
 */
export async function startSchemeServer(
  handler: SchemeHandler,
  pubsub: { maxFrameSize: number; idleTimeoutMs: number } = { maxFrameSize: 65535, idleTimeoutMs: 0 },
): Promise<SchemeTestServer> {
  const sockets = new Set<WebSocket>();
  const raw = new Set<Socket>();
  const server = createServer();

  const run = (req: IncomingMessage, res: ServerResponse | undefined, socket: Socket | undefined, head: Buffer | undefined): void => {
    let used = false;
    const data: Record<string, unknown> = {};
    const ctx = {
      req,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      requestHeader: (name: string) => req.headers[name] as string | undefined,
      getData: (key: DataKey<unknown>) => data[key.name],
      setData: (key: DataKey<unknown>, value: unknown) => void (data[key.name] = value),
    } as unknown as SchemeRequest['ctx'];
    const request: SchemeRequest = {
      ctx,
      isUpgrade: socket !== undefined,
      pubsub,
      // No config changes here: nothing to follow.
      follow: () => () => undefined,
      accept(options) {
        if (!socket || !head || used) return Promise.reject(new Error('accept() without an upgrade request'));
        used = true;
        const wss = new WebSocketServer({ noServer: true, maxPayload: options?.maxPayload ?? 65535, perMessageDeflate: false });
        return new Promise((resolve) => {
          wss.handleUpgrade(req, socket, head, (ws) => {
            ws.pause();
            sockets.add(ws);
            ws.on('close', () => sockets.delete(ws));
            resolve(ws);
          });
        });
      },
      reject(status, body) {
        const text = JSON.stringify(body) + '\n';
        if (res) {
          res.writeHead(status, { 'content-type': 'application/json' }).end(text);
        } else if (socket) {
          socket.end(`HTTP/1.1 ${status} Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
        }
      },
    };
    handler(request).catch(() => {
      if (res && !res.headersSent) res.writeHead(500).end();
      socket?.destroy();
    });
  };

  server.on('connection', (s: Socket) => {
    raw.add(s);
    s.on('close', () => raw.delete(s));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => run(req, res, undefined, undefined));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => run(req, undefined, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    wsUrl: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    port,
    sockets,
    async close() {
      for (const ws of sockets) ws.terminate();
      for (const s of raw) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------- canned Kafka

import { openPubSub } from '../../src/core/pubsub/session.js';

export interface CannedRecord {
  key?: string;
  value: string;
  /** ms; defaults to 1700000000000 + offset */
  timestamp?: bigint;
}

export interface FakeKafka {
  /** A SchemeHandler answering cmd_kafka_list_offset / cmd_kafka_fetch from memory, with APISIX's error strings. */
  readonly handler: SchemeHandler;
  /** Adds a record to a topic (partition 0), as if a producer wrote it. */
  append(topic: string, record: CannedRecord): void;
  /** Fetches answered so far. */
  readonly fetches: number;
}

/**
 * A fake pub/sub Kafka endpoint for example and client tests: partition 0 of
 * each topic holds the given records at offsets 0..n-1; a fetch returns at
 * most `batch` records. The real Kafka path is tested with a real broker.
 */
export function fakeKafka(topics: Record<string, CannedRecord[]>, opts: { batch?: number } = {}): FakeKafka {
  const logs = new Map<string, KafkaMessage[]>();
  const batch = opts.batch ?? 2;
  let fetches = 0;
  const append = (topic: string, r: CannedRecord): void => {
    const log = logs.get(topic) ?? [];
    logs.set(topic, log);
    const offset = BigInt(log.length);
    log.push({
      offset,
      timestamp: r.timestamp ?? 1700000000000n + offset,
      key: r.key === undefined ? Buffer.alloc(0) : Buffer.from(r.key),
      value: Buffer.from(r.value),
    });
  };
  for (const [t, records] of Object.entries(topics)) {
    logs.set(t, []);
    for (const r of records) append(t, r);
  }
  const handler: SchemeHandler = async (request) => {
    const session = await openPubSub(request);
    if (!session) return;
    session.on('cmd_kafka_list_offset', async ({ topic, partition, timestamp }) => {
      const log = logs.get(topic);
      if (!log || partition !== 0) throw new Error(`failed to list offset, topic: ${topic}, partition: ${partition}, err: not found ${log ? 'partition' : 'topic'}`);
      if (timestamp === -2n) return { kafka_list_offset_resp: { offset: 0n } };
      if (timestamp === -1n) return { kafka_list_offset_resp: { offset: BigInt(log.length) } };
      const m = log.find((x) => x.timestamp >= timestamp);
      return { kafka_list_offset_resp: { offset: m ? m.offset : -1n } };
    });
    session.on('cmd_kafka_fetch', async ({ topic, partition, offset }) => {
      fetches++;
      const log = logs.get(topic);
      if (!log || partition !== 0) throw new Error(`failed to fetch message, topic: ${topic}, partition: ${partition}, err: not found ${log ? 'partition' : 'topic'}`);
      if (offset < 0n || offset > BigInt(log.length)) throw new Error(`failed to fetch message, topic: ${topic}, partition: ${partition}, err: OFFSET_OUT_OF_RANGE`);
      const messages = log.slice(Number(offset), Number(offset) + batch);
      return { kafka_fetch_resp: { messages } };
    });
    await session.wait();
  };
  return {
    handler,
    append,
    get fetches() {
      return fetches;
    },
  };
}
