/**
 * Referential integrity (APISIX's admin-api.md on DELETE and `force`): writes naming a missing upstream,
 * service or plugin config are refused; DELETE of a referenced object is
 * refused naming the referrer, unless ?force=true (exactly).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin();
});
afterAll(() => h.close());

const upstream = { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' };

describe('references on write', () => {
  it('refuses a route whose upstream, service or plugin config does not exist', async () => {
    const u = await h.req('PUT', '/apisix/admin/routes/1', { body: { uri: '/a', upstream_id: 'not_found' } });
    expect(u.status).toBe(400);
    expect(u.body).toEqual({ error_msg: 'failed to fetch upstream info by upstream id [not_found], response code: 404' });
    const s = await h.req('PUT', '/apisix/admin/routes/1', { body: { uri: '/a', service_id: 'not_found' } });
    expect(s.body).toEqual({ error_msg: 'failed to fetch service info by service id [not_found], response code: 404' });
    const p = await h.req('PUT', '/apisix/admin/routes/1', { body: { uri: '/a', plugins: {}, plugin_config_id: 'not_found' } });
    expect(p.body).toEqual({
      error_msg: 'failed to fetch plugin config info by plugin config id [not_found], response code: 404',
    });
    const sv = await h.req('PUT', '/apisix/admin/services/1', { body: { upstream_id: 'not_found' } });
    expect(sv.body).toEqual({ error_msg: 'failed to fetch upstream info by upstream id [not_found], response code: 404' });
    expect((await h.req('GET', '/apisix/admin/routes')).body.total).toBe(0);
  });
});

describe('references on delete', () => {
  it('upstream used by a route, then by a service; force=anyvalue still refuses; force=true deletes', async () => {
    expect((await h.req('PUT', '/apisix/admin/upstreams/u1', { body: upstream })).status).toBe(201);
    expect((await h.req('PUT', '/apisix/admin/routes/r1', { body: { uri: '/a', upstream_id: 'u1' } })).status).toBe(201);
    expect((await h.req('PUT', '/apisix/admin/services/s1', { body: { upstream_id: 'u1' } })).status).toBe(201);

    const refused = await h.req('DELETE', '/apisix/admin/upstreams/u1');
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error_msg: 'can not delete this upstream, route [r1] is still using it now' });
    expect((await h.req('DELETE', '/apisix/admin/upstreams/u1?force=anyvalue')).status).toBe(400);
    expect((await h.req('DELETE', '/apisix/admin/upstreams/u1?force=TRUE')).status).toBe(400);

    expect((await h.req('DELETE', '/apisix/admin/routes/r1')).status).toBe(200);
    const bySvc = await h.req('DELETE', '/apisix/admin/upstreams/u1');
    expect(bySvc.body).toEqual({ error_msg: 'can not delete this upstream, service [s1] is still using it now' });
    expect((await h.req('GET', '/apisix/admin/upstreams/u1')).status).toBe(200);

    const forced = await h.req('DELETE', '/apisix/admin/upstreams/u1?force=true');
    expect(forced.status).toBe(200);
    expect(forced.body).toEqual({ deleted: '1', key: '/apisix/upstreams/u1' });
    await h.req('DELETE', '/apisix/admin/services/s1');
  });

  it('upstream used by traffic-split in a plugin config', async () => {
    await h.req('PUT', '/apisix/admin/upstreams/u2', { body: upstream });
    // Written straight to the store: traffic-split is not an enabled plugin here, the reference still counts.
    await h.store.put('/apisix/plugin_configs/pc9', {
      id: 'pc9',
      plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: 'u2', weight: 1 }] }] } },
    });
    const res = await h.req('DELETE', '/apisix/admin/upstreams/u2');
    expect(res.body).toEqual({ error_msg: 'can not delete this upstream, plugin in plugin_config [pc9] is still using it now' });
    await h.store.delete('/apisix/plugin_configs/pc9');
    expect((await h.req('DELETE', '/apisix/admin/upstreams/u2')).status).toBe(200);
  });

  it('service used by a route', async () => {
    await h.req('PUT', '/apisix/admin/services/s2', { body: {} });
    await h.req('PUT', '/apisix/admin/routes/r2', { body: { uri: '/b', service_id: 's2' } });
    const res = await h.req('DELETE', '/apisix/admin/services/s2');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error_msg: 'can not delete this service directly, route [r2] is still using it now' });
    expect((await h.req('DELETE', '/apisix/admin/services/s2?force=true')).status).toBe(200);
    await h.req('DELETE', '/apisix/admin/routes/r2');
  });

  it('plugin config used by a route', async () => {
    await h.req('PUT', '/apisix/admin/plugin_configs/1', { body: { plugins: {} } });
    await h.req('PUT', '/apisix/admin/routes/1', { body: { uri: '/c', plugin_config_id: 1, upstream } });
    const res = await h.req('DELETE', '/apisix/admin/plugin_configs/1');
    expect(res.body).toEqual({ error_msg: 'can not delete this plugin config, route [1] is still using it now' });
    await h.req('DELETE', '/apisix/admin/routes/1');
    expect((await h.req('DELETE', '/apisix/admin/plugin_configs/1')).status).toBe(200);
  });
});
