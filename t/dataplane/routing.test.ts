import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startPlane, startUpstream, type Plane, type Upstream } from './helpers.js';

describe('data plane: routing end to end', () => {
  let plane: Plane;
  let up: Upstream;

  beforeAll(async () => {
    up = await startUpstream();
    plane = await startPlane();
    const upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } };
    await plane.put('/apisix/routes/1', { uri: '/hello', upstream });
    await plane.put('/apisix/routes/2', { uri: '/pub/*', methods: ['GET'], upstream });
    await plane.put('/apisix/routes/3', { uri: '/host-only', hosts: ['a.example.com'], upstream });
  });
  afterAll(async () => {
    await plane?.close();
    await up?.close();
  });

  it('proxies a matched route to the upstream with path and query', async () => {
    const res = await send(plane.port, { path: '/hello?x=1&y=%20' });
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body.url).toBe('/hello?x=1&y=%20');
    expect(res.headers.server).toMatch(/^Portico/);
  });

  it('answers 404 with APISIX body when nothing matches', async () => {
    const res = await send(plane.port, { path: '/nope' });
    expect(res.status).toBe(404);
    expect(res.body).toBe('{"error_msg":"404 Route Not Found"}\n');
  });

  it('matches methods and hosts', async () => {
    expect((await send(plane.port, { path: '/pub/x' })).status).toBe(200);
    expect((await send(plane.port, { method: 'POST', path: '/pub/x', body: 'a' })).status).toBe(404);
    expect((await send(plane.port, { path: '/host-only', headers: { host: 'a.example.com' } })).status).toBe(200);
    expect((await send(plane.port, { path: '/host-only', headers: { host: 'A.Example.com:9080' } })).status).toBe(200);
    expect((await send(plane.port, { path: '/host-only', headers: { host: 'b.example.com' } })).status).toBe(404);
  });

  it('rejects paths that climb above the root with 400', async () => {
    const res = await send(plane.port, { path: '/../etc/passwd' });
    expect(res.status).toBe(400);
  });
});
