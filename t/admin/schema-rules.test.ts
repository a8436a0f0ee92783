/**
 * Validation driven through HTTP with APISIX's messages (the cases of APISIX's
 * t/admin/*.t; errors name the field, the JSON pointer and the missing or
 * conflicting key): every refused write changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin();
});
afterAll(() => h.close());

const upstream = { nodes: { '127.0.0.1:8080': 1 }, type: 'roundrobin' };

async function refused(path: string, body: unknown, msg: string | RegExp): Promise<void> {
  const res = await h.req('PUT', path, { body });
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  if (typeof msg === 'string') expect(res.body.error_msg).toBe(msg);
  else expect(res.body.error_msg).toMatch(msg);
  const key = path.replace('/apisix/admin', '/apisix');
  expect(await h.store.get(key)).toBeUndefined();
}

describe('routes', () => {
  it('duplicate and unknown methods', async () => {
    await refused('/apisix/admin/routes/1', { uri: '/a', methods: ['GET', 'GET'], upstream }, /^invalid configuration: property "methods" validation failed/);
    await refused(
      '/apisix/admin/routes/1',
      { uri: '/a', methods: ['invalid_method'], upstream },
      'invalid configuration: property "methods" validation failed: failed to validate item 1: matches none of the enum values',
    );
  });

  it('invalid ids', async () => {
    await refused('/apisix/admin/routes', { id: -100, uri: '/a', upstream }, /^invalid configuration: property "id" validation failed/);
  });

  it('host wildcards only in front', async () => {
    expect((await h.req('PUT', '/apisix/admin/routes/h', { body: { uri: '/a', host: '*.foo.com', upstream } })).status).toBe(201);
    await refused('/apisix/admin/routes/h2', { uri: '/a', host: 'a.*.foo.com', upstream }, /^invalid configuration: property "host" validation failed/);
    await refused('/apisix/admin/routes/h2', { uri: '/a', hosts: ['*.a.*.foo.com'], upstream }, /^invalid configuration: property "hosts"/);
  });

  it('conflicting pairs name the keys', async () => {
    await refused('/apisix/admin/routes/c', { uri: '/a', host: 'a.com', hosts: ['b.com'], upstream }, 'only one of host or hosts is allowed');
    await refused(
      '/apisix/admin/routes/c',
      { uri: '/a', remote_addr: '127.0.0.1', remote_addrs: ['127.0.0.1'], upstream },
      'only one of remote_addr or remote_addrs is allowed',
    );
    await refused('/apisix/admin/routes/c', { uri: '/a', uris: ['/b'], upstream }, /uri/);
    await h.req('PUT', '/apisix/admin/upstreams/1', { body: upstream });
    await refused('/apisix/admin/routes/c', { uri: '/a', upstream, upstream_id: '1' }, /upstream/);
  });

  it('unknown properties and unknown plugins are named', async () => {
    await refused('/apisix/admin/routes/u', { uri: '/a', upstream, no_such_field: 1 }, /no_such_field/);
    await refused('/apisix/admin/routes/u', { uri: '/a', plugins: { 'no-such-plugin': {} } }, /unknown plugin \[no-such-plugin\]/);
  });
});

describe('upstreams', () => {
  it('type is any string; chash needs a key; IPv6 needs brackets', async () => {
    expect((await h.req('PUT', '/apisix/admin/upstreams/t1', { body: { nodes: { '127.0.0.1:8080': 1 }, type: 'unknown' } })).status).toBe(201);
    expect((await h.req('PUT', '/apisix/admin/upstreams/t2', { body: { nodes: { '127.0.0.1:8080': 1 } } })).status).toBe(201);
    await refused('/apisix/admin/upstreams/t3', { nodes: { '127.0.0.1:8080': 1 }, type: 'chash' }, /missing key/);
    await refused(
      '/apisix/admin/upstreams/t3',
      { nodes: [{ host: '::1', port: 80, weight: 1 }] },
      "invalid configuration: IPv6 address must be enclosed with '[' and ']'",
    );
    await refused('/apisix/admin/upstreams/wrong', { ...upstream, id: 'other' }, 'wrong upstream id');
  });
});

describe('services, consumers, global rules', () => {
  it('an empty service is allowed; a 257-char name is not', async () => {
    expect((await h.req('PUT', '/apisix/admin/services/e', { body: {} })).status).toBe(201);
    await refused('/apisix/admin/services/n', { name: 'a'.repeat(257) }, /^invalid configuration: property "name" validation failed/);
  });

  it('duplicate key-auth keys across consumers are refused', async () => {
    expect((await h.req('PUT', '/apisix/admin/consumers', { body: { username: 'jack', plugins: { 'key-auth': { key: 'k1' } } } })).status).toBe(201);
    const dup = await h.req('PUT', '/apisix/admin/consumers', { body: { username: 'jill', plugins: { 'key-auth': { key: 'k1' } } } });
    expect(dup.status).toBe(400);
    expect(dup.body.error_msg).toMatch(/duplicate key of plugin key-auth found with consumer: jack/);
    expect(await h.store.get('/apisix/consumers/jill')).toBeUndefined();
    // Updating the same consumer with its own key is fine.
    expect((await h.req('PUT', '/apisix/admin/consumers/jack', { body: { username: 'jack', plugins: { 'key-auth': { key: 'k1' } } } })).status).toBe(200);
  });

  it('global rules need plugins and may not repeat a plugin of another rule', async () => {
    await refused('/apisix/admin/global_rules/1', {}, 'invalid configuration: property "plugins" is required');
    const body = { plugins: { 'limit-count': { count: 2, time_window: 60 } } };
    expect((await h.req('PUT', '/apisix/admin/global_rules/1', { body })).status).toBe(201);
    await refused('/apisix/admin/global_rules/2', body, "plugin 'limit-count' already exists in global rule with id '1'");
    expect((await h.req('PUT', '/apisix/admin/global_rules/1', { body })).status).toBe(200);
  });
});
