/**
 * Starts the Admin API alone on an ephemeral loopback port, over an in-memory
 * store, with fresh random keys. Requests go through real HTTP (undici) so
 * content types, raw bodies and headers are exactly what a client sends.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { createAdminServer } from '../../src/admin/server.js';
import { loadConfig, mergeConfig, type DeepPartial } from '../../src/core/config/file.js';
import type { PorticoConfig } from '../../src/core/config/types.js';
import { PluginRegistry } from '../../src/core/plugin/registry.js';
import { MemoryStore } from '../../src/core/store/memory.js';
import type { ConfigStore } from '../../src/core/store/types.js';

export interface Reply {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON
  body: any;
  text: string;
  headers: Record<string, string>;
}

export interface ReqOptions {
  /** An object is sent as JSON; a string as is. */
  body?: unknown;
  /** Admin key to send in X-API-KEY; `null` sends none. Defaults to the admin key. */
  key?: string | null;
  headers?: Record<string, string>;
  contentType?: string;
}

export interface AdminHarness {
  url: string;
  port: number;
  adminKey: string;
  viewerKey: string;
  store: ConfigStore;
  app: FastifyInstance;
  config: PorticoConfig;
  req(method: string, path: string, opts?: ReqOptions): Promise<Reply>;
  close(): Promise<void>;
}

export async function startAdmin(
  opts: { config?: DeepPartial<PorticoConfig>; store?: ConfigStore; plugins?: string[] } = {},
): Promise<AdminHarness> {
  const adminKey = randomBytes(16).toString('hex');
  const viewerKey = randomBytes(16).toString('hex');
  const base: DeepPartial<PorticoConfig> = {
    apisix: { data_encryption: { enable_encrypt_fields: false, keyring: [] } },
    deployment: {
      admin: {
        admin_listen: { ip: '127.0.0.1', port: 0 },
        admin_key: [
          { name: 'admin', key: adminKey, role: 'admin' },
          { name: 'viewer', key: viewerKey, role: 'viewer' },
        ],
      },
    },
    plugins: opts.plugins ?? ['kafka-proxy', 'key-auth', 'limit-count', 'proxy-rewrite'],
  };
  const config = loadConfig({ overrides: mergeConfig(base, opts.config ?? {}), env: {} });
  const store = opts.store ?? new MemoryStore();
  const registry = await PluginRegistry.load(config.plugins);
  let app: FastifyInstance;
  try {
    app = await createAdminServer({ config, store, registry, logger: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
  } catch (err) {
    if (!opts.store) await store.close();
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    adminKey,
    viewerKey,
    store,
    app,
    config,
    async req(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      const key = o.key === undefined ? adminKey : o.key;
      if (key !== null) headers['x-api-key'] = key;
      let body: string | undefined;
      if (o.body !== undefined) {
        body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
        headers['content-type'] = o.contentType ?? 'application/json';
      }
      const res = await request(url + path, { method: method as 'GET', headers, body });
      const text = await res.body.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // Plain-text bodies (APISIX has a few) stay strings.
      }
      const flat: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
      return { status: res.statusCode, body: parsed, text, headers: flat };
    },
    async close() {
      await app.close();
      if (!opts.store) await store.close();
    },
  };
}
