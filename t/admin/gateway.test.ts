/**
 * The Admin API inside a whole gateway node (the lead's startTestGateway):
 * a route written through the Admin API is served by the data plane.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

let gw: TestGateway;
let backend: Server;
let backendPort: number;

beforeAll(async () => {
  backend = createServer((req, res) => res.end(`backend saw ${req.url}`));
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  backendPort = (backend.address() as AddressInfo).port;
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw?.close();
  await new Promise((resolve) => backend.close(resolve));
});

async function eventually(fn: () => Promise<boolean>, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('admin in the gateway', () => {
  it('routes written through the Admin API are served, and removed ones are not', async () => {
    const up = await gw.admin('PUT', '/apisix/admin/upstreams/1', { nodes: { [`127.0.0.1:${backendPort}`]: 1 }, type: 'roundrobin' });
    expect(up.status).toBe(201);
    const route = await gw.admin('PUT', '/apisix/admin/routes/1', { uri: '/hello', upstream_id: '1' });
    expect(route.status).toBe(201);
    await eventually(async () => (await fetch(`${gw.dataUrl}/hello`)).status === 200);
    expect(await (await fetch(`${gw.dataUrl}/hello`)).text()).toBe('backend saw /hello');

    expect((await gw.admin('DELETE', '/apisix/admin/upstreams/1')).status).toBe(400);
    expect((await gw.admin('DELETE', '/apisix/admin/routes/1')).status).toBe(200);
    await eventually(async () => (await fetch(`${gw.dataUrl}/hello`)).status === 404);
  });

  it('the viewer key configured for the node reads but cannot write', async () => {
    expect((await gw.admin('GET', '/apisix/admin/routes', undefined, gw.viewerKey)).status).toBe(200);
    expect((await gw.admin('PUT', '/apisix/admin/routes/2', { uri: '/x', upstream_id: '1' }, gw.viewerKey)).status).toBe(401);
  });
});
