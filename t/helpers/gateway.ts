/**
 * Starts a whole gateway node in the test process: a temporary data dir,
 * Admin API and data plane on ephemeral loopback ports, fresh random keys.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, expect } from 'vitest';
import { startUpstream, type Upstream } from '../dataplane/helpers.js';
import { loadConfig, mergeConfig, type DeepPartial } from '../../src/core/config/file.js';
import type { PorticoConfig } from '../../src/core/config/types.js';
import { startGateway, type Gateway } from '../../src/gateway.js';

export interface AdminResponse {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read arbitrary JSON
  body: any;
  text: string;
  headers: Record<string, string>;
}

export interface TestGateway {
  adminUrl: string;
  dataUrl: string;
  dataPort: number;
  adminKey: string;
  viewerKey: string;
  dataDir: string;
  gateway: Gateway;
  admin(method: string, path: string, body?: unknown, key?: string): Promise<AdminResponse>;
  close(): Promise<void>;
}

/** PUTs each `[id, route]` through the Admin API, in order; a refused one fails the test naming its id. */
export async function putRoutes(
  gw: { admin(method: string, path: string, body: unknown): Promise<{ status: number; text: string }> },
  routes: ReadonlyArray<readonly [string, unknown]>,
): Promise<void> {
  for (const [id, route] of routes) {
    const res = await gw.admin('PUT', `/apisix/admin/routes/${id}`, route);
    expect(res.status, `${id}: ${res.text}`).toBeLessThan(300);
  }
}

export async function startTestGateway(
  opts: {
    config?: DeepPartial<PorticoConfig>;
    dataDir?: string;
    /** With worker_processes 1, serve in the test process (default) or, as `npm start` does, in a forked worker. */
    inProcess?: boolean;
    /** Where the gateway logs (default: silent, or $PORTICO_TEST_LOG's level), for tests that read its lines. */
    logger?: Logger;
  } = {},
): Promise<TestGateway> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'portico-test-'));
  const adminKey = randomBytes(16).toString('hex');
  const viewerKey = randomBytes(16).toString('hex');
  const base: DeepPartial<PorticoConfig> = {
    // HTTPS is opt-in here (their default ports would collide between test files); the control API on an ephemeral port.
    apisix: { node_listen: { ip: '127.0.0.1', port: 0 }, ssl: { enable: false, listen: [{ ip: '127.0.0.1', port: 0 }] }, control: { ip: '127.0.0.1', port: 0 } },
    nginx_config: { worker_processes: 1 },
    // prometheus is enabled by default: its export listener on an ephemeral port, so test gateways never contend for 9091.
    plugin_attr: { prometheus: { export_addr: { ip: '127.0.0.1', port: 0 } } },
    deployment: {
      admin: {
        admin_listen: { ip: '127.0.0.1', port: 0 },
        admin_key: [
          { name: 'admin', key: adminKey, role: 'admin' },
          { name: 'viewer', key: viewerKey, role: 'viewer' },
        ],
      },
      embedded: { data_dir: dataDir },
    },
  };
  const config = loadConfig({ overrides: mergeConfig(base, opts.config ?? {}), env: {} });
  // In-process with worker_processes 1 unless asked otherwise; main.js forks a worker (t/dataplane/worker-process.test.ts).
  const logger = opts.logger ?? pino({ level: process.env.PORTICO_TEST_LOG ?? 'silent' });
  const gateway = await startGateway(config, { logger, inProcess: opts.inProcess ?? true });
  const adminUrl = `http://127.0.0.1:${gateway.adminAddress?.port ?? 0}`;
  const dataPort = gateway.dataAddress.port;
  return {
    adminUrl,
    dataUrl: `http://127.0.0.1:${dataPort}`,
    dataPort,
    adminKey,
    viewerKey,
    dataDir,
    gateway,
    async admin(method, path, body, key = adminKey) {
      const res = await fetch(adminUrl + path, {
        method,
        headers: { 'X-API-KEY': key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // Plain-text bodies (APISIX has a few) stay strings.
      }
      return { status: res.status, body: parsed, text, headers: Object.fromEntries(res.headers.entries()) };
    },
    async close() {
      await gateway.close();
      if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * For a describe block: a gateway and an echo upstream, started in beforeAll
 * and stopped in afterAll. The returned object is filled in before the tests run.
 */
export function useGatewayWithEcho(opts: { config?: DeepPartial<PorticoConfig>; inProcess?: boolean } = {}): { gw: TestGateway; up: Upstream } {
  const env = {} as { gw: TestGateway; up: Upstream };
  beforeAll(async () => {
    env.gw = await startTestGateway(opts);
    env.up = await startUpstream();
  });
  afterAll(async () => {
    await env.gw?.close();
    await env.up?.close();
  });
  return env;
}
