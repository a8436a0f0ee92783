/**
 * limit-req and limit-conn with worker_processes 2: like limit-count's
 * counters (limit-count-workers.test.ts), their local state holds per node,
 * not per worker process. Requests go on fresh connections, several at once,
 * so the kernel hands them to both workers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send } from '../dataplane/helpers.js';
import { useGatewayWithEcho } from '../helpers/gateway.js';

describe('limit-req and limit-conn: worker_processes 2', () => {
  const env = useGatewayWithEcho({ config: { nginx_config: { worker_processes: 2 } } });
  let slow: Server;
  beforeAll(async () => {
    slow = createServer((_req, res) => setTimeout(() => res.end('slow ok'), 600));
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    slow?.closeAllConnections();
    await new Promise((r) => slow?.close(r));
  });

  /** Routes written before `probe` are applied by any worker that serves it; 20 fresh connections in a row. */
  async function synced(): Promise<void> {
    const { gw, up } = env;
    expect((await gw.admin('PUT', '/apisix/admin/routes/probe', { uri: '/probe', upstream: { nodes: { [`127.0.0.1:${up.port}`]: 1 } } })).status).toBeLessThan(300);
    for (let ok = 0, tries = 0; ok < 20; tries++) {
      expect(tries).toBeLessThan(500);
      ok = (await send(gw.dataPort, { path: '/probe' })).status === 200 ? ok + 1 : 0;
    }
  }

  it('limit-req: one bucket per key for the node', async () => {
    const { gw, up } = env;
    const upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    const route = { uri: '/lr', upstream, plugins: { 'limit-req': { rate: 0.1, burst: 2, key: 'remote_addr', nodelay: true, rejected_code: 429 } } };
    expect((await gw.admin('PUT', '/apisix/admin/routes/lr', route)).status).toBe(201);
    await synced();
    const statuses: number[] = [];
    for (let batch = 0; batch < 4; batch++) statuses.push(...(await Promise.all(Array.from({ length: 5 }, () => send(gw.dataPort, { path: '/lr' })))).map((r) => r.status));
    // Per worker, 3 each would pass.
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(17);
  });

  it('limit-conn: one count of requests in flight for the node', async () => {
    const { gw } = env;
    const upstream = { nodes: { [`127.0.0.1:${(slow.address() as AddressInfo).port}`]: 1 } };
    const route = { uri: '/lc', upstream, plugins: { 'limit-conn': { conn: 2, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', rejected_code: 429 } } };
    expect((await gw.admin('PUT', '/apisix/admin/routes/lc', route)).status).toBe(201);
    await synced();
    const replies = await Promise.all(Array.from({ length: 10 }, () => send(gw.dataPort, { path: '/lc' })));
    expect(replies.filter((r) => r.status === 200)).toHaveLength(2);
    expect(replies.filter((r) => r.status === 429)).toHaveLength(8);
    // Released in whichever worker served them.
    const again = await Promise.all(Array.from({ length: 2 }, () => send(gw.dataPort, { path: '/lc' })));
    expect(again.map((r) => r.status)).toEqual([200, 200]);
  });
});
