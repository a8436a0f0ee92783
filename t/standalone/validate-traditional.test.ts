/**
 * POST /apisix/admin/configs/validate on a gateway with its embedded store (the
 * default mode): a whole document checked with the Admin API's checks, every
 * problem reported, nothing stored; /configs itself is not served here.
 */
import { stringify as stringifyYaml } from 'yaml';
import { describe, expect, test } from 'vitest';
import { useGatewayWithEcho } from '../helpers/gateway.js';

const env = useGatewayWithEcho();

describe('POST /configs/validate in the default mode', () => {
  test('several errors across resources, each with its resource, id, index and field', async () => {
    const res = await env.gw.admin('POST', '/apisix/admin/configs/validate', {
      routes: [
        { id: 'r1', uri: '/a', plugins: { 'limit-count': { count: -1, time_window: 60 } }, upstream_id: 'u1' },
        { id: 'r2', uri: '/b', methods: ['FETCH'], upstream_id: 'u1' },
      ],
      upstreams: [{ id: 'u1', nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' }],
      consumers: [
        { username: 'jack', plugins: { 'key-auth': { key: 'same' } } },
        { username: 'jill', plugins: { 'key-auth': { key: 'same' } } },
      ],
      stream_routes: [{ id: 's' }],
    });
    expect(res.status).toBe(400);
    expect(res.body.error_msg).toBe('Configuration validation failed');
    const byId = Object.fromEntries((res.body.errors as Array<{ resource_id?: string; resource_type: string }>).map((e) => [e.resource_id ?? e.resource_type, e]));
    expect(byId.r1).toMatchObject({ resource_type: 'routes', index: 0, field: 'plugins.limit-count.count' });
    expect(byId.r2).toMatchObject({ resource_type: 'routes', index: 1, field: 'methods' });
    expect(byId.jill).toMatchObject({ resource_type: 'consumers', index: 1, error: 'duplicate key of plugin key-auth found with consumer: jack' });
    expect(byId.stream_routes).toMatchObject({ error: 'stream mode is disabled, can not add stream routes' });
    // Within one document each of the two holders clashes with the other.
    expect(byId.jack).toMatchObject({ resource_type: 'consumers', index: 0, error: 'duplicate key of plugin key-auth found with consumer: jill' });
    expect(res.body.errors).toHaveLength(5);
    // Nothing was stored.
    expect((await env.gw.admin('GET', '/apisix/admin/upstreams')).body.total).toBe(0);
  });

  test('a valid YAML document answers 200 {}', async () => {
    const doc = { routes: [{ id: 'r1', uri: '/a', upstream: { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' } }] };
    const res = await fetch(`${env.gw.adminUrl}/apisix/admin/configs/validate`, {
      method: 'POST',
      headers: { 'X-API-KEY': env.gw.adminKey, 'content-type': 'application/yaml' },
      body: stringifyYaml(doc),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
  });

  test('bad bodies: empty, not JSON, not a mapping', async () => {
    const empty = await env.gw.admin('POST', '/apisix/admin/configs/validate', '');
    expect(empty.body).toEqual({ error_msg: 'invalid request body: empty request body' });
    const notJson = await env.gw.admin('POST', '/apisix/admin/configs/validate', 'not json');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error_msg).toMatch(/^invalid request body: /);
  });

  test('the validator needs the admin key like every Admin API route', async () => {
    expect((await env.gw.admin('POST', '/apisix/admin/configs/validate', {}, 'wrong')).status).toBe(401);
  });

  test('GET /configs is not a resource here', async () => {
    const res = await env.gw.admin('GET', '/apisix/admin/configs');
    expect(res.status).toBe(404);
  });
});
