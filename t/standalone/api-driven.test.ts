/**
 * APISIX's API-driven standalone mode (role traditional, config_provider yaml):
 * PUT /apisix/admin/configs replaces the whole configuration, with per-resource
 * conf versions and X-Digest; the Admin API serves /configs only. And
 * POST /configs/validate, in this mode and in the default one.
 */
import { stringify as stringifyYaml, parse as parseYaml } from 'yaml';
import { describe, expect, test } from 'vitest';
import { useGatewayWithEcho } from '../helpers/gateway.js';

const env = useGatewayWithEcho({ config: { deployment: { config_provider: 'yaml' } } });

function put(body: unknown, digest: string | undefined, contentType = 'application/json') {
  return fetch(`${env.gw.adminUrl}/apisix/admin/configs`, {
    method: 'PUT',
    headers: { 'X-API-KEY': env.gw.adminKey, 'content-type': contentType, ...(digest === undefined ? {} : { 'X-Digest': digest }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function getConfigs(accept = 'application/json'): Promise<{ status: number; body: Record<string, unknown>; headers: Headers; text: string }> {
  const res = await fetch(`${env.gw.adminUrl}/apisix/admin/configs`, { headers: { 'X-API-KEY': env.gw.adminKey, accept } });
  const text = await res.text();
  return { status: res.status, body: (accept === 'application/yaml' ? parseYaml(text) : JSON.parse(text)) as Record<string, unknown>, headers: res.headers, text };
}

async function status(path: string, headers: Record<string, string> = {}): Promise<number> {
  // The swap is applied on the next tick after the PUT answers: give it a moment, bounded.
  const res = await fetch(env.gw.dataUrl + path, { headers });
  await res.arrayBuffer();
  return res.status;
}

async function eventually(path: string, want: number, headers: Record<string, string> = {}): Promise<void> {
  const end = Date.now() + 2000;
  while ((await status(path, headers)) !== want) {
    if (Date.now() > end) throw new Error(`${path} never answered ${want}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const upstream = () => ({ nodes: { [`127.0.0.1:${env.up.port}`]: 1 }, type: 'roundrobin' });

describe('API-driven standalone mode', () => {
  test('starts empty: every conf version 0, no metadata headers', async () => {
    const res = await getConfigs();
    expect(res.status).toBe(200);
    expect(res.body.routes_conf_version).toBe(0);
    expect(res.body.upstreams_conf_version).toBe(0);
    expect(res.body.routes).toBeUndefined();
    expect(res.headers.get('x-digest')).toBeNull();
    const yaml = await getConfigs('application/yaml');
    expect(yaml.headers.get('content-type')).toBe('application/yaml');
    expect(yaml.body.consumers_conf_version).toBe(0);
  });

  test('only /configs is served: the per-resource Admin API is off', async () => {
    expect((await env.gw.admin('GET', '/apisix/admin/routes')).status).toBe(404);
    expect((await env.gw.admin('PUT', '/apisix/admin/routes/1', { uri: '/x', upstream: upstream() })).status).toBe(404);
  });

  test('a PUT needs X-Digest, and a body', async () => {
    const res = await put({ routes_conf_version: 1 }, undefined);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error_msg: 'missing digest header' });
    const empty = await put('', 'd0');
    expect(empty.status).toBe(400);
    expect(await empty.json()).toEqual({ error_msg: 'invalid request body: empty request body' });
  });

  test('PUT replaces the configuration (202, X-Last-Modified, X-Digest); the same digest again is 204', async () => {
    const doc = { routes: [{ id: 'r1', uri: '/r1', upstream_id: 'u1' }], upstreams: [{ id: 'u1', ...upstream() }] };
    const res = await put(doc, 'd1');
    expect(res.status).toBe(202);
    expect(Number(res.headers.get('x-last-modified'))).toBeGreaterThan(0);
    expect(res.headers.get('x-digest')).toBe('d1');
    await eventually('/r1', 200);
    expect((await put({}, 'd1')).status).toBe(204);
    await eventually('/r1', 200);
    const got = await getConfigs();
    expect(got.body.routes).toEqual(doc.routes);
    expect(got.body.routes_conf_version).toBe(1);
    expect(got.headers.get('x-digest')).toBe('d1');
    const head = await fetch(`${env.gw.adminUrl}/apisix/admin/configs`, { method: 'HEAD', headers: { 'X-API-KEY': env.gw.adminKey } });
    expect(head.status).toBe(200);
    expect(head.headers.get('x-digest')).toBe('d1');
  });

  test('a YAML body works too, and lists left out are emptied', async () => {
    const doc = { routes: [{ id: 'r2', uri: '/r2', upstream: upstream() }] };
    expect((await put(stringifyYaml(doc), 'd2', 'application/yaml')).status).toBe(202);
    await eventually('/r2', 200);
    await eventually('/r1', 404);
    const got = await getConfigs();
    expect(got.body.upstreams).toBeUndefined();
    expect(got.body.routes_conf_version).toBe(2);
  });

  test('conf versions: equal keeps the list as it is, lower is refused as stale, higher rebuilds', async () => {
    expect((await put({ routes_conf_version: 10, routes: [{ id: 'r3', uri: '/r3', upstream: upstream() }] }, 'd3')).status).toBe(202);
    await eventually('/r3', 200);
    // Equal: the body's routes are ignored.
    expect((await put({ routes_conf_version: 10, routes: [{ id: 'r4', uri: '/r4', upstream: upstream() }] }, 'd4')).status).toBe(202);
    await new Promise((r) => setTimeout(r, 100));
    expect(await status('/r3')).toBe(200);
    expect(await status('/r4')).toBe(404);
    // Lower: refused, nothing changes.
    const stale = await put({ routes_conf_version: 9, routes: [] }, 'd5');
    expect(stale.status).toBe(400);
    expect(await stale.json()).toEqual({ error_msg: 'routes_conf_version must be greater than or equal to (10)' });
    expect(await status('/r3')).toBe(200);
    const notNumber = await put({ routes_conf_version: 'adc' }, 'd5');
    expect(await notNumber.json()).toEqual({ error_msg: 'routes_conf_version must be a number' });
    // Higher: rebuilt.
    expect((await put({ routes_conf_version: 11, routes: [{ id: 'r4', uri: '/r4', upstream: upstream() }] }, 'd6')).status).toBe(202);
    await eventually('/r4', 200);
    await eventually('/r3', 404);
  });

  test('an item whose modifiedIndex did not move keeps its old value', async () => {
    const route = (uri: string, modifiedIndex: number) => ({ routes: [{ id: 'm', uri, modifiedIndex, upstream: upstream() }] });
    expect((await put(route('/m1', 1), 'm1')).status).toBe(202);
    await eventually('/m1', 200);
    expect((await put(route('/m2', 1), 'm2')).status).toBe(202);
    await new Promise((r) => setTimeout(r, 100));
    expect(await status('/m1')).toBe(200);
    expect(await status('/m2')).toBe(404);
    expect((await put(route('/m2', 2), 'm3')).status).toBe(202);
    await eventually('/m2', 200);
    await eventually('/m1', 404);
  });

  test('consumers and their credentials (`<username>/credentials/<id>`) authenticate', async () => {
    const doc = {
      routes: [{ id: 'k', uri: '/k', plugins: { 'key-auth': {} }, upstream: upstream() }],
      consumers: [{ username: 'john' }, { id: 'john/credentials/a', plugins: { 'key-auth': { key: 'auth-a' } } }],
    };
    expect((await put(doc, 'c1')).status).toBe(202);
    await eventually('/k', 200, { apikey: 'auth-a' });
    expect(await status('/k', { apikey: 'wrong' })).toBe(401);
  });

  test('an invalid document is refused with the first problem, and nothing changes', async () => {
    const before = await getConfigs();
    const res = await put({ routes: [{ id: 'x', uri: 123 }] }, 'bad');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error_msg: 'invalid configuration: property "uri" validation failed: wrong type: expected string, got number' });
    const unknownPlugin = await put({ services: [{ id: 's1', plugins: { 'invalid-plugin': {} } }] }, 'bad');
    expect(await unknownPlugin.json()).toEqual({ error_msg: 'unknown plugin [invalid-plugin]' });
    const after = await getConfigs();
    expect(after.body).toEqual(before.body);
    await eventually('/k', 200, { apikey: 'auth-a' });
  });

  test('POST /configs/validate answers every problem at once and stores nothing', async () => {
    const before = await getConfigs();
    const res = await env.gw.admin('POST', '/apisix/admin/configs/validate', {
      routes: [
        { id: 'r1', uri: 123 },
        { id: 'r1', uri: '/ok', upstream_id: 'missing' },
      ],
      upstreams: [{ id: 'u1', nodes: { '127.0.0.1:1980': 1 }, type: 'chash', hash_on: 'vars' }],
      routes_conf_version: 'x',
    });
    expect(res.status).toBe(400);
    expect(res.body.error_msg).toBe('Configuration validation failed');
    expect(res.body.errors).toEqual(
      expect.arrayContaining([
        { resource_type: 'routes', error: 'routes_conf_version must be a number, got string' },
        { resource_type: 'routes', resource_id: 'r1', index: 0, field: 'uri', error: 'invalid configuration: property "uri" validation failed: wrong type: expected string, got number' },
        { resource_type: 'routes', resource_id: 'r1', index: 1, field: 'upstream_id', error: 'failed to fetch upstream info by upstream id [missing], response code: 404' },
        { resource_type: 'routes', resource_id: 'r1', index: 1, field: 'id', error: 'found duplicate id r1 in routes' },
        { resource_type: 'upstreams', resource_id: 'u1', index: 0, error: 'missing key' },
      ]),
    );
    expect(res.body.errors).toHaveLength(5);
    expect((await getConfigs()).body).toEqual(before.body);
    const ok = await env.gw.admin('POST', '/apisix/admin/configs/validate', { routes: [{ id: 'v', uri: '/v', upstream: upstream() }] });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({});
  });
});
