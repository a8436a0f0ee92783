/**
 * `portico/testing`: a whole gateway for a plugin author's tests, in a few
 * lines. It starts a gateway node on loopback ports chosen by the kernel
 * (embedded store in a temporary directory, fresh admin key), a fake upstream
 * that answers every request with what it received as JSON, and one route,
 * created through the Admin API so the plugin's schema is enforced as an
 * operator's write would be.
 *
 * ```ts
 * import { startPluginGateway } from 'portico/testing';
 * const gw = await startPluginGateway({
 *   pluginDirs: [new URL('.', import.meta.url).pathname],
 *   plugins: ['greeting'],
 *   route: { uri: '/hello', plugins: { greeting: { name: 'Ada' } } },
 * });
 * const res = await gw.request('/hello');   // res.status, res.headers, res.body, res.json()
 * await gw.close();
 * ```
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { loadConfig, mergeConfig, type DeepPartial } from './core/config/file.js';
import type { PorticoConfig } from './core/config/types.js';
import { startGateway, type Gateway } from './gateway.js';

/** What the fake upstream saw of one request. */
export interface UpstreamRequest {
  readonly method: string;
  /** Path and query as the upstream received them. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface TestResponse {
  readonly status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  readonly headers: Record<string, string>;
  readonly body: string;
  /** The body parsed as JSON (the fake upstream's answer is an UpstreamRequest). */
  json<T = unknown>(): T;
}

export interface AdminAnswer {
  readonly status: number;
  /** Parsed JSON, or the text when the body is not JSON. */
  readonly body: unknown;
}

export interface PluginGatewayOptions {
  /** Directories of plugin files, as config.yaml's plugin_dirs. */
  pluginDirs?: string[];
  /** Plugins to enable besides config.yaml's default list (your plugins' names). */
  plugins?: string[];
  /** A route (APISIX's route object) created as /apisix/admin/routes/{its id, or 1}; its upstream defaults to the fake upstream. */
  route?: Record<string, unknown>;
  /** Data-plane processes: 0 (default) serves in this process; 1 or more forks that many workers, as `npm start` does. */
  workers?: number;
  /** More of config.yaml, merged over the defaults (plugin_attr, apisix, ...). */
  config?: DeepPartial<PorticoConfig>;
  /** A pino level for the gateway's log (default: silent). */
  logLevel?: string;
  /** Or the logger itself, say one writing to a stream the test reads. */
  logger?: Logger;
}

export interface PluginGateway {
  /** http://127.0.0.1:PORT of the data plane. */
  readonly url: string;
  readonly gateway: Gateway;
  /** Every request the fake upstream received, oldest first. */
  readonly upstreamRequests: UpstreamRequest[];
  /** The fake upstream's node, `127.0.0.1:PORT`, for more routes. */
  readonly upstreamNode: string;
  /** Sends a request to the data plane and reads the whole answer. */
  request(path: string, init?: RequestInit): Promise<TestResponse>;
  /** Calls the Admin API with the admin key, e.g. admin('PUT', '/apisix/admin/routes/2', {...}). */
  admin(method: string, path: string, body?: unknown): Promise<AdminAnswer>;
  /** Stops the gateway and the fake upstream, removes the temporary directory. */
  close(): Promise<void>;
}

async function startEchoUpstream(seen: UpstreamRequest[]): Promise<{ node: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const got: UpstreamRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      seen.push(got);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(got));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    node: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function parse(text: string): unknown {
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return text;
  }
}

/** Starts the gateway, the fake upstream and the route; rejects with the Admin API's message if the route is refused. */
export async function startPluginGateway(opts: PluginGatewayOptions = {}): Promise<PluginGateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'portico-plugin-test-'));
  const adminKey = randomBytes(16).toString('hex');
  const seen: UpstreamRequest[] = [];
  const upstream = await startEchoUpstream(seen);
  const workers = opts.workers ?? 0;
  const defaults = loadConfig({ env: {} });
  const base: DeepPartial<PorticoConfig> = {
    apisix: { node_listen: { ip: '127.0.0.1', port: 0 }, ssl: { enable: false, listen: [{ ip: '127.0.0.1', port: 0 }] } },
    nginx_config: { worker_processes: Math.max(workers, 1) },
    plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: 0 } } },
    deployment: {
      admin: { admin_listen: { ip: '127.0.0.1', port: 0 }, admin_key: [{ name: 'admin', key: adminKey, role: 'admin' }] },
      embedded: { data_dir: dataDir },
    },
    plugins: [...new Set([...defaults.plugins, ...(opts.plugins ?? [])])],
    plugin_dirs: opts.pluginDirs ?? [],
  };
  let gateway: Gateway;
  try {
    const config = loadConfig({ overrides: mergeConfig(base, opts.config ?? {}), env: {} });
    gateway = await startGateway(config, { logger: opts.logger ?? pino({ level: opts.logLevel ?? 'silent' }), inProcess: workers === 0 });
  } catch (err) {
    await upstream.close();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const adminUrl = `http://127.0.0.1:${gateway.adminAddress!.port}`;
  const url = `http://127.0.0.1:${gateway.dataAddress.port}`;
  const close = async (): Promise<void> => {
    await gateway.close();
    await upstream.close();
    rmSync(dataDir, { recursive: true, force: true });
  };
  const admin = async (method: string, path: string, body?: unknown): Promise<AdminAnswer> => {
    const res = await fetch(adminUrl + path, {
      method,
      headers: { 'x-api-key': adminKey, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: parse(await res.text()) };
  };
  if (opts.route !== undefined) {
    const route = { upstream: { type: 'roundrobin', nodes: { [upstream.node]: 1 } }, ...opts.route };
    const put = await admin('PUT', `/apisix/admin/routes/${encodeURIComponent(String(opts.route.id ?? 1))}`, route);
    if (put.status >= 300) {
      await close();
      throw new Error(`the route was refused (${put.status}): ${JSON.stringify(put.body)}`);
    }
    // The data plane applies a write from the store's watch: wait until it serves the route's revision.
    const revision = await gateway.store.list('/apisix/routes/').then((l) => l.revision);
    await waitFor(() => gateway.appliedRevision() >= revision);
  }
  return {
    url,
    gateway,
    upstreamRequests: seen,
    upstreamNode: upstream.node,
    async request(path, init) {
      const res = await fetch(url + path, init);
      const body = await res.text();
      return { status: res.status, headers: Object.fromEntries(res.headers.entries()), body, json: <T>() => JSON.parse(body) as T };
    },
    admin,
    close,
  };
}

async function waitFor(ready: () => boolean, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > until) throw new Error('the gateway did not apply the route in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
