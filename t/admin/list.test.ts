/**
 * Collection GETs (APISIX v3's list responses): v3 shape, name/label/uri/filter filters, total
 * counted after filtering and before paging, paging by createdIndex.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin();
});
afterAll(() => h.close());

const upstream = { nodes: { '127.0.0.1:1980': 1 } };

describe('list', () => {
  it('is {list:[], total:0} when empty', async () => {
    const res = await h.req('GET', '/apisix/admin/routes');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ list: [], total: 0 });
    expect(res.text).toBe('{"list":[],"total":0}\n');
  });

  it('has key, value, createdIndex and modifiedIndex per item and no action/node', async () => {
    await h.req('PUT', '/apisix/admin/upstreams/u1', { body: upstream });
    await h.req('PUT', '/apisix/admin/services/s1', { body: {} });
    // Insert in an order that differs from key order, so paging by createdIndex is visible.
    const ids = ['r25', 'r03', 'r17', 'r01', 'r09', 'r11', 'r13', 'r05', 'r21', 'r07', 'r19', 'r15', 'r23'];
    for (const [i, id] of ids.entries()) {
      const body: Record<string, unknown> =
        i % 2 === 0
          ? { uri: `/even/${id}`, name: `even-${id}`, upstream_id: 'u1', labels: { tier: 'a' } }
          : { uris: [`/odd/${id}`, '/x'], name: `odd-${id}`, service_id: 's1' };
      expect((await h.req('PUT', `/apisix/admin/routes/${id}`, { body })).status).toBe(201);
    }
    const res = await h.req('GET', '/apisix/admin/routes');
    expect(res.body.total).toBe(13);
    expect(res.body.list).toHaveLength(13);
    expect(res.body).not.toHaveProperty('action');
    expect(res.body).not.toHaveProperty('node');
    for (const item of res.body.list) {
      expect(Object.keys(item).sort()).toEqual(['createdIndex', 'key', 'modifiedIndex', 'value']);
      expect(item.key).toBe(`/apisix/routes/${item.value.id}`);
    }
  });

  it('filters by name regex, label key, uri regex (uri or uris) and filter=', async () => {
    const names = async (q: string): Promise<string[]> => {
      const res = await h.req('GET', `/apisix/admin/routes?${q}`);
      expect(res.status).toBe(200);
      expect(res.body.total).toBe(res.body.list.length);
      return res.body.list.map((i: { value: { id: string } }) => i.value.id).sort();
    };
    expect(await names('name=^even-r0')).toEqual(['r09']);
    expect(await names('name=^odd-r0')).toEqual(['r01', 'r03', 'r05', 'r07']);
    expect(await names('label=tier')).toHaveLength(7);
    expect(await names('label=other')).toEqual([]);
    expect(await names('uri=odd/r1')).toEqual(['r11', 'r15']);
    expect(await names('uri=^/x$')).toHaveLength(6);
    expect(await names(`filter=${encodeURIComponent('service_id=s1')}`)).toHaveLength(6);
    expect(await names(`filter=${encodeURIComponent('upstream_id=u1')}&name=r2`)).toEqual(['r21', 'r23', 'r25']);
    // Fields outside list_filter_fields are ignored, not applied.
    expect(await names(`filter=${encodeURIComponent('desc=zzz')}`)).toHaveLength(13);
    const bad = await h.req('GET', '/apisix/admin/routes?name=(');
    expect(bad.status).toBe(400);
  });

  it('pages by createdIndex only when both page and page_size are given; total before paging', async () => {
    const p1 = await h.req('GET', '/apisix/admin/routes?page=1&page_size=10');
    expect(p1.body.total).toBe(13);
    expect(p1.body.list.map((i: { value: { id: string } }) => i.value.id)).toEqual([
      'r25', 'r03', 'r17', 'r01', 'r09', 'r11', 'r13', 'r05', 'r21', 'r07',
    ]);
    const p2 = await h.req('GET', '/apisix/admin/routes?page=2&page_size=10');
    expect(p2.body.list.map((i: { value: { id: string } }) => i.value.id)).toEqual(['r19', 'r15', 'r23']);
    expect(p2.body.total).toBe(13);
    const filtered = await h.req('GET', '/apisix/admin/routes?page=1&page_size=10&name=odd');
    expect(filtered.body.total).toBe(6);
    expect((await h.req('GET', '/apisix/admin/routes?page_size=10')).body.list).toHaveLength(13);
  });

  it('refuses page_size outside 10–500 with a plain-string body', async () => {
    for (const size of ['9', '501', 'abc']) {
      const res = await h.req('GET', `/apisix/admin/routes?page=1&page_size=${size}`);
      expect(res.status).toBe(400);
      expect(res.text).toBe('page_size must be between 10 and 500');
    }
  });
});
