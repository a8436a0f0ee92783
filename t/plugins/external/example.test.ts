/**
 * The worked example of docs/plugin-development.md (examples/plugins/api-version.ts),
 * tested the way the guide tells a plugin author to: through portico/testing.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startPluginGateway, type PluginGateway, type UpstreamRequest } from 'portico/testing';

let gw: PluginGateway;
beforeAll(async () => {
  gw = await startPluginGateway({
    pluginDirs: [fileURLToPath(new URL('../../../examples/plugins/', import.meta.url))],
    plugins: ['api-version'],
    route: { uri: '/orders', plugins: { 'api-version': { versions: ['v1', 'v2'], default: 'v2' } } },
  });
});
afterAll(() => gw?.close());

test('passes the chosen version upstream and tells the client', async () => {
  const res = await gw.request('/orders', { headers: { 'accept-version': 'v1' } });
  expect(res.status).toBe(200);
  expect(res.headers['x-api-version']).toBe('v1');
  expect(res.json<UpstreamRequest>().headers['x-api-version']).toBe('v1');
  expect((await gw.request('/orders')).headers['x-api-version']).toBe('v2');
});

test('refuses a version the route does not serve', async () => {
  const res = await gw.request('/orders', { headers: { 'accept-version': 'v9' } });
  expect(res.status).toBe(400);
  expect(res.json()).toEqual({ error_msg: 'unsupported API version v9, this route serves v1, v2' });
});

test('the Admin API runs the schema and check()', async () => {
  const bad = await gw.admin('PUT', '/apisix/admin/routes/2', { uri: '/x', plugins: { 'api-version': { versions: ['v1'], default: 'v3' } }, upstream: { nodes: { [gw.upstreamNode]: 1 } } });
  expect(bad).toEqual({ status: 400, body: { error_msg: 'failed to check the configuration of plugin api-version err: default v3 is not one of versions' } });
});

test('plugin metadata renames the response header', async () => {
  const put = await gw.admin('PUT', '/apisix/admin/plugin_metadata/api-version', { response_header: 'x-served-version' });
  expect(put.status).toBe(201);
  let res = await gw.request('/orders');
  for (let i = 0; i < 50 && res.headers['x-served-version'] === undefined; i++) {
    await new Promise((r) => setTimeout(r, 20));
    res = await gw.request('/orders');
  }
  expect(res.headers['x-served-version']).toBe('v2');
});
