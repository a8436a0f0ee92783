/**
 * Numbers JSON can write but not store: `1e309` parses to Infinity, which
 * JSON.stringify writes back as `null`, so a write that let one through would
 * store something else than it answered, and the data plane would then drop
 * the object. Every such write is refused with a 400 naming the field, and
 * nothing is stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin({ plugins: ['cors', 'limit-count', 'response-rewrite', 'key-auth'] });
});
afterAll(() => h.close());

const NODES = '"nodes":{"127.0.0.1:1980":1}';

const cases: Array<[string, string, string, RegExp]> = [
  ['cors max_age', '/apisix/admin/routes/r1', `{"uri":"/a","plugins":{"cors":{"max_age":1e309}},"upstream":{${NODES}}}`, /"max_age".*finite/],
  ['route priority', '/apisix/admin/routes/r2', `{"uri":"/a","priority":1e309,"upstream":{${NODES}}}`, /"priority".*finite/],
  ['negative infinity', '/apisix/admin/routes/r3', `{"uri":"/a","priority":-1e309,"upstream":{${NODES}}}`, /"priority".*-inf/],
  ['retries', '/apisix/admin/upstreams/u1', `{${NODES},"retries":1e309}`, /"retries".*finite/],
  ['retry_timeout', '/apisix/admin/upstreams/u2', `{${NODES},"retry_timeout":1e999}`, /"retry_timeout".*finite/],
  ['timeout.connect', '/apisix/admin/upstreams/u3', `{${NODES},"timeout":{"connect":1e309,"send":1,"read":1}}`, /"timeout".*"connect".*finite/],
  ['keepalive_pool.size', '/apisix/admin/upstreams/u4', `{${NODES},"keepalive_pool":{"size":1e309}}`, /"keepalive_pool".*"size".*finite/],
  ['node weight', '/apisix/admin/upstreams/u5', '{"nodes":{"127.0.0.1:1980":1e309}}', /"nodes".*finite/],
  ['node weight (array form)', '/apisix/admin/upstreams/u6', '{"nodes":[{"host":"127.0.0.1","port":1980,"weight":1e309}]}', /"weight".*finite/],
  ['limit-count count', '/apisix/admin/routes/r4', `{"uri":"/a","plugins":{"limit-count":{"count":1e309,"time_window":60}},"upstream":{${NODES}}}`, /"count".*finite/],
  ['limit-count time_window', '/apisix/admin/routes/r5', `{"uri":"/a","plugins":{"limit-count":{"count":1,"time_window":1e309}},"upstream":{${NODES}}}`, /"time_window".*finite/],
  ['response-rewrite status_code', '/apisix/admin/routes/r6', `{"uri":"/a","plugins":{"response-rewrite":{"status_code":1e309}},"upstream":{${NODES}}}`, /"status_code".*finite/],
  // No schema says what these hold, but they are stored all the same.
  ['node metadata', '/apisix/admin/upstreams/u7', '{"nodes":[{"host":"127.0.0.1","port":1980,"weight":1,"metadata":{"x":1e309}}]}', /"metadata".*"x".*finite/],
  ['vars operand', '/apisix/admin/routes/r7', `{"uri":"/a","vars":[["arg_x","==",1e309]],"upstream":{${NODES}}}`, /"vars".*item 1.*item 3.*finite/],
  ['plugin_metadata', '/apisix/admin/plugin_metadata/cors', '{"x":1e309}', /finite/],
];

describe('non-finite numbers', () => {
  for (const [name, path, body, msg] of cases) {
    it(`${name}: 400 naming the field, nothing stored`, async () => {
      const res = await h.req('PUT', path, { body });
      expect(res.status, res.text).toBe(400);
      expect(res.body.error_msg).toMatch(msg);
      expect(await h.store.get(path.replace('/admin', ''))).toBeUndefined();
    });
  }

  it('PATCH cannot bring one in either', async () => {
    expect((await h.req('PUT', '/apisix/admin/upstreams/p1', { body: `{${NODES}}` })).status).toBe(201);
    const res = await h.req('PATCH', '/apisix/admin/upstreams/p1/retries', { body: '1e309' });
    expect(res.status, res.text).toBe(400);
    expect(res.body.error_msg).toMatch(/"retries".*finite/);
    const res2 = await h.req('PATCH', '/apisix/admin/upstreams/p1', { body: '{"timeout":{"connect":1,"send":1e400,"read":1}}' });
    expect(res2.status, res2.text).toBe(400);
    expect((await h.req('GET', '/apisix/admin/upstreams/p1')).body.value.retries).toBeUndefined();
  });

  it('schema validation answers the same', async () => {
    const res = await h.req('POST', '/apisix/admin/schema/validate/routes', { body: `{"uri":"/a","priority":1e309,"upstream":{${NODES}}}` });
    expect(res.status).toBe(400);
    expect(res.body.error_msg).toMatch(/"priority".*finite/);
  });

  it('large finite numbers within range are still accepted', async () => {
    const res = await h.req('PUT', '/apisix/admin/routes/ok', { body: `{"uri":"/a","priority":1e15,"upstream":{${NODES}}}` });
    expect(res.status, res.text).toBe(201);
  });
});
