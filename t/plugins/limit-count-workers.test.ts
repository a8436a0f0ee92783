/**
 * limit-count with worker_processes 2: the limit holds per node, as APISIX's
 * shared dict makes it hold across nginx workers, not per worker process.
 * Requests go on fresh connections, several at once, so the kernel hands
 * them to both workers (with counters per worker, 2x the count got through).
 */
import { describe, expect, it } from 'vitest';
import { send } from '../dataplane/helpers.js';
import { useGatewayWithEcho } from '../helpers/gateway.js';

describe('limit-count: worker_processes 2', () => {
  const env = useGatewayWithEcho({ config: { nginx_config: { worker_processes: 2 } } });

  it('counts every worker against one window per key', async () => {
    const { gw, up } = env;
    const upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    const count = 5;
    expect((await gw.admin('PUT', '/apisix/admin/routes/lc', { uri: '/lc', upstream, plugins: { 'limit-count': { count, time_window: 60, rejected_code: 429 } } })).status).toBe(201);
    // Written after the limited route: a worker that serves it has applied that route too. 20 fresh connections in a row.
    expect((await gw.admin('PUT', '/apisix/admin/routes/probe', { uri: '/probe', upstream })).status).toBe(201);
    for (let ok = 0, tries = 0; ok < 20; tries++) {
      expect(tries).toBeLessThan(500);
      ok = (await send(gw.dataPort, { path: '/probe' })).status === 200 ? ok + 1 : 0;
    }
    const statuses: number[] = [];
    for (let batch = 0; batch < 6; batch++) {
      const replies = await Promise.all(Array.from({ length: 5 }, () => send(gw.dataPort, { path: '/lc' })));
      statuses.push(...replies.map((r) => r.status));
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(count);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30 - count);
    // The quota headers come from the shared window too.
    const last = await send(gw.dataPort, { path: '/lc' });
    expect(last.status).toBe(429);
    expect(last.headers['x-ratelimit-remaining']).toBe('0');
    expect(last.headers['x-ratelimit-limit']).toBe(String(count));
  });
});
