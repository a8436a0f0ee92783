/**
 * Plugin and schema endpoints (APISIX's apisix/admin/plugins.lua and /schema/validate): list in priority order, plugin
 * schemas, core schemas, schema-only validation that never persists, and
 * plugin reload.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin({ plugins: ['kafka-proxy', 'limit-count', 'key-auth', 'proxy-rewrite'] });
});
afterAll(() => h.close());

describe('plugins', () => {
  it('/plugins/list gives the names by priority, highest first', async () => {
    const res = await h.req('GET', '/apisix/admin/plugins/list');
    expect(res.status).toBe(200);
    expect(res.body).toEqual(['key-auth', 'proxy-rewrite', 'limit-count', 'kafka-proxy']);
    expect((await h.req('GET', '/apisix/admin/plugins/list?subsystem=stream')).body).toEqual([]);
    const bad = await h.req('GET', '/apisix/admin/plugins/list?subsystem=asdf');
    expect(bad.status).toBe(400);
    expect(bad.text).toBe('invalid subsystem passed');
  });

  it('/plugins/<name> gives the schema with _meta; consumer schema on request', async () => {
    const res = await h.req('GET', '/apisix/admin/plugins/kafka-proxy');
    expect(res.status).toBe(200);
    expect(res.body.properties.sasl).toBeDefined();
    expect(res.body.properties._meta).toBeDefined();
    const consumer = await h.req('GET', '/apisix/admin/plugins/key-auth?schema_type=consumer');
    expect(consumer.status).toBe(200);
    expect(consumer.body.properties.key).toBeDefined();
    expect((await h.req('GET', '/apisix/admin/plugins/kafka-proxy?schema_type=consumer')).body).toEqual({ error_msg: 'not found schema' });
    expect((await h.req('GET', '/apisix/admin/schema/plugins/kafka-proxy')).body).toEqual(res.body);
  });

  it('unknown plugin, unknown subsystem, stream subsystem', async () => {
    const res = await h.req('GET', '/apisix/admin/plugins/asdf');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error_msg: 'plugin not found in subsystem http' });
    expect((await h.req('GET', '/apisix/admin/schema/plugins/asdf')).status).toBe(404);
    expect((await h.req('GET', '/apisix/admin/plugins/kafka-proxy?subsystem=asdf')).body).toEqual({
      error_msg: 'unsupported subsystem: asdf',
    });
    expect((await h.req('GET', '/apisix/admin/plugins/kafka-proxy?subsystem=stream')).body).toEqual({
      error_msg: 'plugin not found in subsystem stream',
    });
  });

  it('?all=true maps names to attributes', async () => {
    const res = await h.req('GET', '/apisix/admin/plugins?all=true');
    expect(res.status).toBe(200);
    expect(res.body['kafka-proxy'].priority).toBe(508);
    expect(res.body['key-auth'].consumer_schema).toBeDefined();
  });

  it('PUT /plugins/reload answers done; other methods 405', async () => {
    const res = await h.req('PUT', '/apisix/admin/plugins/reload');
    expect(res.status).toBe(200);
    expect(res.text).toBe('done');
    const get = await h.req('GET', '/apisix/admin/plugins/reload');
    expect(get.status).toBe(405);
    expect(get.body).toEqual({ error_msg: 'please use PUT method to reload the plugins, GET method is not allowed.' });
  });
});

describe('schema', () => {
  it('/schema/<name> serves core schemas; unknown names are 400', async () => {
    const route = await h.req('GET', '/apisix/admin/schema/route');
    expect(route.status).toBe(200);
    expect(route.body.properties.uri).toBeDefined();
    expect((await h.req('GET', '/apisix/admin/schema/upstream')).status).toBe(200);
    const missing = await h.req('GET', '/apisix/admin/schema/nope');
    expect(missing.status).toBe(400);
    expect(missing.body).toEqual({ error_msg: 'not found schema: nope' });
  });

  it('/schema/validate/<resource> checks without persisting, raw message without prefix', async () => {
    const ok = await h.req('POST', '/apisix/admin/schema/validate/routes', { body: { uri: '/a', upstream: { nodes: { 'a:1': 1 } } } });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('');
    const bad = await h.req('POST', '/apisix/admin/schema/validate/routes', { body: { methods: ['GET'], upstream_id: 1 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error_msg).not.toMatch(/^invalid configuration/);
    expect(bad.body.error_msg.length).toBeGreaterThan(0);
    const up = await h.req('POST', '/apisix/admin/schema/validate/upstreams', { body: { nodes: { 'a:1': 1 }, scheme: 'ftp' } });
    expect(up.status).toBe(400);
    expect((await h.req('POST', '/apisix/admin/schema/validate/nope', { body: {} })).status).toBe(404);
    expect((await h.store.list('/apisix/')).items).toEqual([]);
  });
});
