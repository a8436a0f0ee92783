/**
 * Test scaffolding for the data plane: real upstream servers on port 0, a
 * data plane over a MemoryStore, and a plugin lookup that can hold test-only
 * plugins. Everything started here is closed by the returned close().
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { loadConfig, mergeConfig, type DeepPartial } from '../../src/core/config/file.js';
import type { PorticoConfig } from '../../src/core/config/types.js';
import type { PluginLookup } from '../../src/core/snapshot/snapshot.js';
import { startDataPlane } from '../../src/core/process/launch.js';
import type { DataPlane } from '../../src/core/dataplane/types.js';
import type { PluginDefinition } from '../../src/core/plugin/contract.js';
import { MemoryStore } from '../../src/core/store/memory.js';

export interface Upstream {
  port: number;
  server: Server;
  /** Requests seen, newest last. */
  seen: Array<{ method: string; url: string; headers: IncomingMessage['headers']; rawHeaders: string[]; body: string }>;
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

const echo: Handler = (req, res, body) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: body.toString() }));
};

/** An upstream that records requests and answers with `handler` (default: JSON echo). */
export async function startUpstream(handler: Handler = echo, opts: { readBody?: boolean } = {}): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const server = createServer((req, res) => {
    if (opts.readBody === false) {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: '' });
      handler(req, res, Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: body.toString() });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A plugin lookup over test-only plugin definitions; conf defaults are the plugin's business. */
export function testRegistry(plugins: PluginDefinition[]): PluginLookup & { list(): PluginDefinition[] } {
  const byName = new Map(plugins.map((p) => [p.name, p as PluginDefinition]));
  return {
    get: (name: string) => byName.get(name),
    checkConf: (name: string, conf: unknown) => {
      const def = byName.get(name);
      if (!def) return `unknown plugin [${name}]`;
      const err = def.check?.(conf as Record<string, unknown>, 'route');
      return err === undefined ? undefined : `failed to check the configuration of plugin ${name} err: ${err}`;
    },
    list: () => [...byName.values()],
  } as unknown as PluginLookup & { list(): PluginDefinition[] };
}

export function testConfig(over: DeepPartial<PorticoConfig> = {}): PorticoConfig {
  const base: DeepPartial<PorticoConfig> = {
    // HTTPS is opt-in here: its default port would collide between test files (the control API's too).
    apisix: { node_listen: { ip: '127.0.0.1', port: 0 }, ssl: { enable: false, listen: [{ ip: '127.0.0.1', port: 0 }] }, control: { ip: '127.0.0.1', port: 0 } },
    nginx_config: { worker_processes: 1 },
  };
  return loadConfig({ overrides: mergeConfig(base, over), env: {} });
}

export interface Plane {
  dp: DataPlane;
  store: MemoryStore;
  url: string;
  port: number;
  /** Writes an object and resolves once the data plane compiled a snapshot at or past that write. */
  put(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  close(): Promise<void>;
}

export async function startPlane(opts: { plugins?: PluginDefinition[]; config?: DeepPartial<PorticoConfig> } = {}): Promise<Plane> {
  const store = new MemoryStore();
  const dp = await startDataPlane({
    config: testConfig(opts.config),
    registry: testRegistry(opts.plugins ?? []),
    store,
    logger: pino({ level: process.env.PORTICO_TEST_LOG ?? 'silent' }),
    // The test plugins live in this process; with worker_processes 2 a test gets workers anyway.
    inProcess: true,
  });
  const port = dp.address.port;
  const waitFor = async (rev: number) => {
    const until = Date.now() + 5000;
    while (dp.appliedRevision() < rev) {
      if (Date.now() > until) throw new Error(`snapshot never reached revision ${rev}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  return {
    dp,
    store,
    url: `http://127.0.0.1:${port}`,
    port,
    async put(key, value) {
      const item = await store.put(key, value);
      await waitFor(item.modRevision);
    },
    async del(key) {
      await store.delete(key);
      const { revision } = await store.list('/apisix/');
      await waitFor(revision);
    },
    async close() {
      await dp.close();
      await store.close();
    },
  };
}

export interface RawResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** One request with node:http (no fetch normalisation of paths or headers). */
export function send(
  port: number,
  opts: { method?: string; path?: string; headers?: Record<string, string | string[]>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * One request written as raw bytes (repeated header lines that an HTTP client
 * would merge); it must ask for `Connection: close`, and the reply is all the
 * server sent until it closed. Written without a FIN: Node's server drops a
 * request whose client half-closed.
 */
export function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(text));
    const parts: Buffer[] = [];
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(parts).toString('latin1')));
  });
}
