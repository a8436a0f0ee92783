/**
 * A store that lost its watch position (etcd compaction) hands the data plane
 * a full reset; routes missing from it stop being served and new ones are,
 * through real HTTP, with the upstream's pools unaffected.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { loadConfig } from '../../src/core/config/file.js';
import { startDataPlane } from '../../src/core/process/launch.js';
import type { DataPlane } from '../../src/core/dataplane/types.js';
import { PluginRegistry } from '../../src/core/plugin/registry.js';
import type { ListResult, StoreItem, WatchListener } from '../../src/core/store/types.js';

let upstream: Server;
let plane: DataPlane;
let listener: WatchListener | undefined;
let base = '';

const item = (key: string, value: unknown, rev: number): StoreItem => ({ key, value, createRevision: rev, modRevision: rev });

beforeAll(async () => {
  upstream = createServer((req, res) => res.end(`upstream saw ${req.url}`));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const node = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const feed = {
    async list(): Promise<ListResult> {
      return {
        items: [
          item('/apisix/upstreams/1', { id: '1', nodes: { [node]: 1 } }, 1),
          item('/apisix/routes/a', { id: 'a', uri: '/a', upstream_id: '1' }, 2),
        ],
        revision: 2,
      };
    },
    watch(_prefix: string, _from: number, l: WatchListener) {
      listener = l;
      return { close() {} };
    },
  };
  const config = loadConfig({ env: {}, overrides: { apisix: { node_listen: { ip: '127.0.0.1', port: 0 }, ssl: { enable: false } } } });
  const registry = await PluginRegistry.load([]);
  plane = await startDataPlane({ config, registry, store: feed as never, logger: pino({ level: 'silent' }) });
  base = `http://127.0.0.1:${plane.address.port}`;
});

afterAll(async () => {
  await plane?.close();
  await new Promise<void>((r) => upstream.close(() => r()));
});

test('a reset replaces the whole config: dropped routes 404, new ones are served', async () => {
  expect((await fetch(`${base}/a`)).status).toBe(200);
  const node = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  listener!(
    [
      {
        type: 'reset',
        items: [
          item('/apisix/upstreams/1', { id: '1', nodes: { [node]: 1 } }, 1),
          item('/apisix/routes/b', { id: 'b', uri: '/b', upstream_id: '1' }, 9),
        ],
      },
    ],
    9,
  );
  for (let i = 0; i < 50 && plane.appliedRevision() < 9; i++) await new Promise((r) => setTimeout(r, 10));
  expect((await fetch(`${base}/a`)).status).toBe(404);
  const b = await fetch(`${base}/b`);
  expect(b.status).toBe(200);
  expect(await b.text()).toBe('upstream saw /b');
});
