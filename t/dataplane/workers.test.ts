/**
 * worker_processes 2: two cluster workers share the listening socket, build
 * their snapshots from the primary's store over IPC, and converge on changes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startPlane, startUpstream, type Plane, type Upstream } from './helpers.js';

describe('data plane: worker processes', () => {
  let plane: Plane;
  let up: Upstream;

  beforeAll(async () => {
    up = await startUpstream((req, res) => res.end(`ok ${req.url}`), { readBody: false });
    plane = await startPlane({ config: { nginx_config: { worker_processes: 2 } } });
  }, 60_000);
  afterAll(async () => {
    await plane?.close();
    await up?.close();
  });

  it('every worker serves a route written after start, then its update and deletion', async () => {
    const upstream = { nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    await plane.put('/apisix/routes/1', { uri: '/w1', upstream });
    // Fresh connections each time, so the kernel spreads them over both workers.
    for (let i = 0; i < 20; i++) expect((await send(plane.port, { path: '/w1' })).status).toBe(200);

    await plane.put('/apisix/routes/1', { uri: '/w2', upstream });
    for (let i = 0; i < 20; i++) {
      expect((await send(plane.port, { path: '/w2' })).status).toBe(200);
      expect((await send(plane.port, { path: '/w1' })).status).toBe(404);
    }
    await plane.put('/apisix/routes/2', { uri: '/a', upstream });
    await plane.put('/apisix/routes/3', { uri: '/b', upstream });
    await plane.put('/apisix/routes/4', { uri: '/c', upstream });
    for (const p of ['/a', '/b', '/c']) for (let i = 0; i < 6; i++) expect((await send(plane.port, { path: p })).status).toBe(200);
    await plane.del('/apisix/routes/1');
    for (let i = 0; i < 20; i++) expect((await send(plane.port, { path: '/w2' })).status).toBe(404);
  });
});
