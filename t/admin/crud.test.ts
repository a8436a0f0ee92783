/**
 * CRUD for every resource through real HTTP, with APISIX v3's id rules,
 * timestamps and response shapes (docs/en/latest/admin-api.md).
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin();
});
afterAll(() => h.close());

const upstream = { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' };
function rawPut(port: number, path: string, key: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'PUT', headers: { 'x-api-key': key } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const nowSec = (): number => Math.floor(Date.now() / 1000);

/** One valid body per resource that takes an id, and what a PATCH may change. */
type Sample = { res: string; kind: string; body: Record<string, unknown>; change: Record<string, unknown>; post: boolean };
const samples: Sample[] = [
  { res: 'routes', kind: 'route', body: { uri: '/hello', methods: ['GET'], desc: 'r', upstream }, change: { desc: 'changed' }, post: true },
  { res: 'services', kind: 'service', body: { desc: 's', upstream }, change: { desc: 'changed' }, post: true },
  { res: 'upstreams', kind: 'upstream', body: { ...upstream, desc: 'u' }, change: { desc: 'changed' }, post: true },
  {
    res: 'global_rules',
    kind: 'global rule',
    body: { plugins: { 'proxy-rewrite': { uri: '/g' } } },
    change: { plugins: { 'proxy-rewrite': { uri: '/changed' } } },
    post: false,
  },
  {
    res: 'plugin_configs',
    kind: 'plugin config',
    body: { desc: 'p', plugins: { 'proxy-rewrite': { uri: '/p' } } },
    change: { desc: 'changed' },
    post: false,
  },
];

describe.each(samples)('$res', ({ res, kind, body, change, post }) => {
  const base = `/apisix/admin/${res}`;

  it('PUT creates (201), GET reads with indexes, PUT replaces (200) keeping create_time, DELETE removes', async () => {
    const before = nowSec();
    const created = await h.req('PUT', `${base}/c1`, { body });
    expect(created.status).toBe(201);
    expect(created.headers['x-api-version']).toBe('v3');
    expect(created.body.key).toBe(`/apisix/${res}/c1`);
    expect(Object.keys(created.body).sort()).toEqual(['key', 'value']);
    const { create_time, update_time, id, ...rest } = created.body.value;
    expect(id).toBe('c1');
    expect(rest).toEqual(body);
    expect(create_time).toBeGreaterThanOrEqual(before);
    expect(update_time).toBe(create_time);

    const got = await h.req('GET', `${base}/c1`);
    expect(got.status).toBe(200);
    expect(got.body.value).toEqual(created.body.value);
    expect(got.body.createdIndex).toBeGreaterThan(0);
    expect(got.body.modifiedIndex).toBe(got.body.createdIndex);

    // Make the replace land in a later second so update_time visibly moves.
    await h.store.put(`/apisix/${res}/c1`, { ...created.body.value, create_time: 1000, update_time: 1000 });
    const replaced = await h.req('PUT', `${base}/c1`, { body: { ...body, ...change } });
    expect(replaced.status).toBe(200);
    expect(replaced.body.value).toMatchObject(change);
    expect(replaced.body.value.create_time).toBe(1000);
    expect(replaced.body.value.update_time).toBeGreaterThanOrEqual(before);
    const again = await h.req('GET', `${base}/c1`);
    expect(again.body.modifiedIndex).toBeGreaterThan(again.body.createdIndex);
    expect(again.body.createdIndex).toBe(got.body.createdIndex);

    const del = await h.req('DELETE', `${base}/c1`);
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ deleted: '1', key: `/apisix/${res}/c1` });
    const gone = await h.req('GET', `${base}/c1`);
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual({ message: 'Key not found' });
    expect((await h.req('DELETE', `${base}/c1`)).body).toEqual({ message: 'Key not found' });
    expect((await h.req('DELETE', `${base}/c1`)).status).toBe(404);
  });

  it('takes the id from the body when the URL has none, keeping its JSON type', async () => {
    const res1 = await h.req('PUT', base, { body: { ...body, id: 77 } });
    expect(res1.status).toBe(201);
    expect(res1.body.key).toBe(`/apisix/${res}/77`);
    expect(res1.body.value.id).toBe(77);
    await h.req('DELETE', `${base}/77`);
    const res2 = await h.req('PUT', `${base}/78`, { body: { ...body, id: '78' } });
    expect(res2.status).toBe(201);
    expect(res2.body.value.id).toBe('78');
    // The same id as a number matches the URL's string.
    expect((await h.req('PUT', `${base}/78`, { body: { ...body, id: 78 } })).status).toBe(200);
    await h.req('DELETE', `${base}/78`);
  });

  it('refuses a missing id, a mismatched id and the timestamps', async () => {
    expect((await h.req('PUT', base, { body })).body).toEqual({ error_msg: `missing ${kind} id` });
    const wrong = await h.req('PUT', `${base}/1`, { body: { ...body, id: 3 } });
    expect(wrong.status).toBe(400);
    expect(wrong.body).toEqual({ error_msg: `wrong ${kind} id` });
    for (const prop of ['create_time', 'update_time']) {
      const r = await h.req('PUT', `${base}/1`, { body: { ...body, [prop]: 1 } });
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ error_msg: `the property is forbidden:  ${prop}` });
    }
    expect((await h.req('DELETE', base)).body).toEqual({ error_msg: `missing ${kind} id` });
    expect((await h.req('GET', `${base}/1`)).status).toBe(404);
  });

  it(post ? 'POST generates an increasing 20-digit id' : 'POST is not supported', async () => {
    const first = await h.req('POST', base, { body });
    if (!post) {
      expect(first.status).toBe(405);
      expect(first.body).toEqual({ error_msg: `not supported \`POST\` method for ${kind}` });
      return;
    }
    expect(first.status).toBe(201);
    const id1: string = first.body.value.id;
    expect(id1).toMatch(/^\d{20}$/);
    expect(first.body.key).toBe(`/apisix/${res}/${id1}`);
    expect(first.body.value.create_time).toBe(first.body.value.update_time);
    const second = await h.req('POST', base, { body });
    expect(BigInt(second.body.value.id)).toBeGreaterThan(BigInt(id1));
    expect((await h.req('GET', `${base}/${id1}`)).body.value).toEqual(first.body.value);
    expect((await h.req('POST', base, { body: { ...body, id: 1 } })).body).toEqual({ error_msg: `wrong ${kind} id, do not need it` });
    expect((await h.req('POST', `${base}/5`, { body })).body).toEqual({ error_msg: `wrong ${kind} id, do not need it` });
    expect((await h.req('POST', base, { body: { ...body, create_time: 5 } })).body).toEqual({
      error_msg: 'the property is forbidden:  create_time',
    });
    await h.req('DELETE', `${base}/${id1}`);
    await h.req('DELETE', `${base}/${second.body.value.id}`);
  });

  it('PATCH merges', async () => {
    await h.req('PUT', `${base}/p1`, { body });
    const res1 = await h.req('PATCH', `${base}/p1`, { body: change });
    expect(res1.status).toBe(200);
    expect(Object.keys(res1.body).sort()).toEqual(['key', 'value']);
    expect(res1.body.value).toMatchObject(change);
    expect((await h.req('GET', `${base}/p1`)).body.value).toEqual(res1.body.value);
    await h.req('DELETE', `${base}/p1`);
  });
});

describe('forbidden timestamps nested', () => {
  it('inside upstream and as a plugin name', async () => {
    const r1 = await h.req('PUT', '/apisix/admin/routes/1', { body: { uri: '/a', upstream: { ...upstream, update_time: 1 } } });
    expect(r1.body).toEqual({ error_msg: 'the property is forbidden:  upstream.update_time' });
    const r2 = await h.req('PUT', '/apisix/admin/services/1', { body: { plugins: { create_time: {} } } });
    expect(r2.body).toEqual({ error_msg: 'the property is forbidden:  plugins.create_time' });
    expect((await h.req('GET', '/apisix/admin/routes/1')).status).toBe(404);
  });
});

describe('consumers', () => {
  const base = '/apisix/admin/consumers';
  it('are keyed by username, with or without it in the URL', async () => {
    const a = await h.req('PUT', base, { body: { username: 'jack', desc: 'j' } });
    expect(a.status).toBe(201);
    expect(a.body.key).toBe('/apisix/consumers/jack');
    expect(a.body.value.id).toBeUndefined();
    expect(a.body.value.username).toBe('jack');
    const b = await h.req('PUT', `${base}/jack`, { body: { username: 'jack', desc: 'k' } });
    expect(b.status).toBe(200);
    const got = await h.req('GET', `${base}/jack`);
    expect(got.body.value.desc).toBe('k');
    expect(got.body.value.create_time).toBe(a.body.value.create_time);
  });

  it('refuses a different username in the URL, a missing username, POST and PATCH', async () => {
    expect((await h.req('PUT', `${base}/jill`, { body: { username: 'jack' } })).body).toEqual({ error_msg: 'wrong username' });
    const missing = await h.req('PUT', base, { body: { desc: 'x' } });
    expect(missing.status).toBe(400);
    expect(missing.body.error_msg).toBe('invalid configuration: property "username" is required');
    const post = await h.req('POST', base, { body: { username: 'x' } });
    expect(post.status).toBe(405);
    expect(post.body).toEqual({ error_msg: 'not supported `POST` method for consumer' });
    expect((await h.req('PATCH', `${base}/jack`, { body: { desc: 'x' } })).body).toEqual({
      error_msg: 'not supported `PATCH` method for consumer',
    });
  });

  it('DELETE removes the consumer and its credentials, and the list leaves credentials out', async () => {
    await h.req('PUT', base, { body: { username: 'del_me' } });
    await h.store.put('/apisix/consumers/del_me/credentials/c1', { id: 'c1', plugins: {} });
    const list = await h.req('GET', base);
    expect(list.body.list.map((e: { key: string }) => e.key)).not.toContain('/apisix/consumers/del_me/credentials/c1');
    expect(list.body.total).toBe(list.body.list.length);
    expect((await h.req('DELETE', `${base}/del_me`)).body).toEqual({ deleted: '1', key: '/apisix/consumers/del_me' });
    expect(await h.store.get('/apisix/consumers/del_me/credentials/c1')).toBeUndefined();
  });
});

describe('plugin_metadata', () => {
  const base = '/apisix/admin/plugin_metadata';
  it('is keyed by an enabled plugin name and stores it as id', async () => {
    const missing = await h.req('PUT', base, { body: {} });
    expect(missing.body).toEqual({ error_msg: 'missing plugin name' });
    const unknown = await h.req('PUT', `${base}/no-such-plugin`, { body: {} });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toEqual({ error_msg: 'invalid plugin name' });
    expect((await h.req('POST', base, { body: {} })).status).toBe(405);
    expect((await h.req('PATCH', `${base}/kafka-proxy`, { body: {} })).status).toBe(405);
  });

  it('is checked against the plugin metadata_schema, then stored, read and deleted', async () => {
    const h2 = await startAdmin({ plugins: ['cors'] });
    try {
      const bad = await h2.req('PUT', `${base}/cors`, { body: { allow_origins: { a: 1 } } });
      expect(bad.status).toBe(400);
      expect(await h2.store.get('/apisix/plugin_metadata/cors')).toBeUndefined();
      const ok = await h2.req('PUT', `${base}/cors`, { body: { allow_origins: { a: 'http://a.com' } } });
      expect(ok.status).toBe(201);
      expect(ok.body.key).toBe('/apisix/plugin_metadata/cors');
      expect(ok.body.value).toMatchObject({ id: 'cors', allow_origins: { a: 'http://a.com' } });
      expect((await h2.req('GET', `${base}/cors`)).body.value.allow_origins).toEqual({ a: 'http://a.com' });
      expect((await h2.req('GET', base)).body.total).toBe(1);
      expect((await h2.req('DELETE', `${base}/cors`)).body).toEqual({ deleted: '1', key: '/apisix/plugin_metadata/cors' });
    } finally {
      await h2.close();
    }
  });
});

describe('ssls', () => {
  it('never return the private key', async () => {
    await h.store.put('/apisix/ssls/s1', { id: 's1', cert: 'CERT', key: 'PRIVATE', snis: ['a.com'] });
    const got = await h.req('GET', '/apisix/admin/ssls/s1');
    expect(got.body.value.cert).toBe('CERT');
    expect(got.body.value.key).toBeUndefined();
    const list = await h.req('GET', '/apisix/admin/ssls');
    expect(list.body.list[0].value.key).toBeUndefined();
    expect(JSON.stringify(list.body)).not.toContain('PRIVATE');
  });
});

describe('ids and misc', () => {
  it('an invalid id is refused by the schema', async () => {
    const r = await h.req('PUT', '/apisix/admin/upstreams/invalid_id$', { body: upstream });
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toMatch(/^invalid configuration: property "id" validation failed/);
    // WHATWG URL parsing (fetch, undici) folds %2E%2E away, so send the path raw.
    const dots = await rawPut(h.port, '/apisix/admin/upstreams/%2E%2E', h.adminKey, JSON.stringify(upstream));
    expect(dots).toBe(400);
    const slash = await h.req('PUT', '/apisix/admin/upstreams/a%2Fb', { body: upstream });
    expect(slash.status).toBe(400);
    expect((await h.store.list('/apisix/upstreams/')).items).toEqual([]);
  });

  it('a dotted id is allowed', async () => {
    expect((await h.req('PUT', '/apisix/admin/services/a.b', { body: {} })).status).toBe(201);
  });

  it('ttl is refused clearly', async () => {
    const bad = await h.req('PUT', '/apisix/admin/upstreams/t?ttl=abc', { body: upstream });
    expect(bad.body).toEqual({ error_msg: 'invalid argument ttl: should be a number' });
    const num = await h.req('PUT', '/apisix/admin/upstreams/t?ttl=5', { body: upstream });
    expect(num.status).toBe(400);
    expect(num.body.error_msg).toMatch(/^invalid argument ttl: /);
    expect((await h.req('GET', '/apisix/admin/upstreams/t')).status).toBe(404);
  });

  it('plugins and schema only answer GET', async () => {
    expect((await h.req('PUT', '/apisix/admin/schema/route', { body: {} })).body).toEqual({ error_msg: 'not found' });
    expect((await h.req('PUT', '/apisix/admin/plugins/list', { body: {} })).status).toBe(404);
  });
});
