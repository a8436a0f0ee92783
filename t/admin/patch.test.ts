/**
 * PATCH (APISIX's admin-api.md, apisix/admin/resource.lua): deep merge, null deletes, arrays replace,
 * sub-path replaces one attribute, trailing slash replaces the whole value,
 * merged values are validated, and a lost compare-and-set race is a 503.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin();
});
afterAll(() => h.close());

const route = {
  uri: '/index.html',
  methods: ['GET', 'POST', 'PUT'],
  desc: 'new route',
  upstream: { nodes: { '127.0.0.1:8080': 1, '127.0.0.2:8080': 1 }, type: 'roundrobin' },
};

describe('PATCH', () => {
  it('merges objects, deletes on null, replaces arrays, keeps create_time and stores the URL id as a string', async () => {
    const created = await h.req('PUT', '/apisix/admin/routes', { body: { ...route, id: 1 } });
    expect(created.body.value.id).toBe(1);
    await h.store.put('/apisix/routes/1', { ...created.body.value, create_time: 100, update_time: 100 });
    const res = await h.req('PATCH', '/apisix/admin/routes/1', {
      body: { methods: ['GET'], desc: null, upstream: { nodes: { '127.0.0.1:8080': null, '127.0.0.3:8080': 2 } } },
    });
    expect(res.status).toBe(200);
    expect(res.body.key).toBe('/apisix/routes/1');
    const v = res.body.value;
    expect(v.id).toBe('1');
    expect(v.methods).toEqual(['GET']);
    expect(v).not.toHaveProperty('desc');
    expect(v.upstream).toEqual({ nodes: { '127.0.0.2:8080': 1, '127.0.0.3:8080': 2 }, type: 'roundrobin' });
    expect(v.create_time).toBe(100);
    expect(v.update_time).toBeGreaterThan(100);
    expect((await h.req('GET', '/apisix/admin/routes/1')).body.value).toEqual(v);
  });

  it('may set the timestamps itself', async () => {
    const res = await h.req('PATCH', '/apisix/admin/routes/1', { body: { update_time: 1234, create_time: 1000 } });
    expect(res.status).toBe(200);
    expect(res.body.value.update_time).toBe(1234);
    expect(res.body.value.create_time).toBe(1000);
  });

  it('sub-path replaces one attribute (array or string)', async () => {
    const m = await h.req('PATCH', '/apisix/admin/routes/1/methods', { body: ['POST'] });
    expect(m.status).toBe(200);
    expect(m.body.value.methods).toEqual(['POST']);
    expect(m.body.value.update_time).not.toBe(1234);
    const u = await h.req('PATCH', '/apisix/admin/routes/1/uri', { body: '"/patch_uri_test"' });
    expect(u.status).toBe(200);
    expect(u.body.value.uri).toBe('/patch_uri_test');
    const nodes = await h.req('PATCH', '/apisix/admin/routes/1/upstream/nodes', { body: { '127.0.0.9:80': 3 } });
    expect(nodes.body.value.upstream.nodes).toEqual({ '127.0.0.9:80': 3 });
    expect(nodes.body.value.upstream.type).toBe('roundrobin');
  });

  it('sub-path through a non-object is an invalid sub-path', async () => {
    const res = await h.req('PATCH', '/apisix/admin/routes/1/uri/x', { body: '"a"' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error_msg: 'invalid sub-path: /uri' });
  });

  it('a trailing slash replaces the whole value', async () => {
    const res = await h.req('PATCH', '/apisix/admin/routes/1/', { body: { ...route, uri: '/whole' } });
    expect(res.status).toBe(200);
    expect(res.body.value.uri).toBe('/whole');
    expect(res.body.value.methods).toEqual(route.methods);
    expect(res.body.value.id).toBe('1');
  });

  it('validates the merged value and changes nothing when it is invalid', async () => {
    const before = (await h.req('GET', '/apisix/admin/routes/1')).body;
    const res = await h.req('PATCH', '/apisix/admin/routes/1', { body: { methods: ['GET', 'GET'] } });
    expect(res.status).toBe(400);
    expect(res.body.error_msg).toMatch(/^invalid configuration: property "methods" validation failed/);
    const sub = await h.req('PATCH', '/apisix/admin/routes/1/methods', { body: ['FETCH'] });
    expect(sub.status).toBe(400);
    const wrongId = await h.req('PATCH', '/apisix/admin/routes/1', { body: { id: '2' } });
    expect(wrongId.body).toEqual({ error_msg: 'wrong route id' });
    const after = (await h.req('GET', '/apisix/admin/routes/1')).body;
    expect(after).toEqual(before);
  });

  it('refuses a missing body, a non-object body, a missing id and a missing key', async () => {
    expect((await h.req('PATCH', '/apisix/admin/routes/1')).body).toEqual({ error_msg: 'missing new configuration' });
    expect((await h.req('PATCH', '/apisix/admin/routes/1', { body: '[1]' })).body).toEqual({ error_msg: 'invalid configuration' });
    expect((await h.req('PATCH', '/apisix/admin/routes', { body: { desc: 'x' } })).body).toEqual({ error_msg: 'missing route id' });
    const missing = await h.req('PATCH', '/apisix/admin/routes/nope', { body: { desc: 'x' } });
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ message: 'Key not found' });
  });

  it('answers 503 when the value changed between read and write', async () => {
    // A store whose writes race: someone else writes right after the PATCH reads.
    const racing = await startAdmin();
    try {
      await racing.req('PUT', '/apisix/admin/upstreams/1', { body: { nodes: { '127.0.0.1:80': 1 } } });
      const store = racing.store;
      const realGet = store.get.bind(store);
      store.get = async (key: string) => {
        const item = await realGet(key);
        if (item && key === '/apisix/upstreams/1') await store.put(key, { ...(item.value as object), desc: 'other writer' });
        return item;
      };
      const res = await racing.req('PATCH', '/apisix/admin/upstreams/1', { body: { desc: 'mine' } });
      store.get = realGet;
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error_msg: 'value changed before overwritten' });
      expect((await racing.req('GET', '/apisix/admin/upstreams/1')).body.value.desc).toBe('other writer');
    } finally {
      await racing.close();
    }
  });
});

describe('PATCH with hostile keys', () => {
  it('__proto__ in a body or a sub-path is data, never a prototype', async () => {
    await h.req('PUT', '/apisix/admin/services/proto', { body: {} });
    const res = await h.req('PATCH', '/apisix/admin/services/proto', { body: '{"__proto__":{"polluted":1}}' });
    // Refused by the schema (unknown property) or stored as data; never on Object.prototype.
    expect([200, 400]).toContain(res.status);
    const sub = await h.req('PATCH', '/apisix/admin/services/proto/__proto__/polluted', { body: '1' });
    expect([200, 400]).toContain(sub.status);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await h.req('GET', '/apisix/admin/services/proto')).status).toBe(200);
  });
});
