/**
 * A body nested thousands of levels deep once overflowed the stack in
 * validation (500). Any body deeper than the limit is refused with 400 naming
 * the limit, nothing is stored, and the server keeps answering; brackets
 * inside strings do not count, and depths under the limit reach the usual
 * checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BODY_DEPTH } from '../../src/admin/nesting.js';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin({ plugins: ['cors', 'response-rewrite'] });
});
afterAll(() => h.close());

const stored = async (): Promise<number> => (await h.store.list('/apisix/')).items.length;
const arrays = (n: number) => '['.repeat(n) + ']'.repeat(n);
const objects = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
const LIMIT_MSG = `invalid request body: objects and arrays nested more than ${MAX_BODY_DEPTH} levels deep (the limit is ${MAX_BODY_DEPTH})`;

describe('nesting depth', () => {
  it.each([
    ['arrays, 5,000 deep, in a plugin conf', 'PUT', '/apisix/admin/routes/1', `{"uri":"/a","plugins":{"cors":{"x":${arrays(5000)}}}}`],
    ['objects, 3,000 deep, as labels', 'PUT', '/apisix/admin/routes/1', `{"uri":"/a","labels":${objects(3000)}}`],
    ['one level over the limit, in vars', 'PUT', '/apisix/admin/routes/1', `{"uri":"/a","vars":${arrays(MAX_BODY_DEPTH)}}`],
    ['a PATCH', 'PATCH', '/apisix/admin/routes/1', `{"desc":${arrays(4000)}}`],
    ['a schema validation', 'POST', '/apisix/admin/schema/validate/routes', `{"uri":"/a","vars":${arrays(4000)}}`],
    ['a whole configuration (JSON)', 'POST', '/apisix/admin/configs/validate', `{"routes":[{"id":"1","uri":"/a","vars":${arrays(4000)}}]}`],
  ])('%s: 400 naming the limit, nothing stored', async (_what, method, path, body) => {
    const before = await stored();
    const res = await h.req(method, path, { body });
    expect(res.status, res.text).toBe(400);
    expect(res.body.error_msg).toBe(LIMIT_MSG);
    expect(await stored()).toBe(before);
  });

  it.each([300, 5000])('a whole configuration in YAML, %i deep: 400 naming the limit', async (depth) => {
    // 300 parses and is measured; 5,000 overflows the YAML parser itself, which says so.
    const yaml = `routes:\n  - id: "1"\n    uri: /a\n    vars: ${arrays(depth)}\n`;
    const res = await h.req('POST', '/apisix/admin/configs/validate', { body: yaml, contentType: 'application/yaml' });
    expect(res.status, res.text).toBe(400);
    expect(res.body.error_msg).toBe(LIMIT_MSG);
  });

  it('at the limit the usual checks answer (4xx, never 5xx)', async () => {
    // One object level for the body itself, so the arrays reach exactly the limit.
    const res = await h.req('PUT', '/apisix/admin/routes/1', { body: `{"uri":"/a","vars":${arrays(MAX_BODY_DEPTH - 1)}}` });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(res.body.error_msg).not.toBe(LIMIT_MSG);
  });

  it('brackets inside strings are text, not nesting', async () => {
    const desc = '[{'.repeat(3000) + '\\"' + ']}'.repeat(3000);
    const body = `{"uri":"/a","plugins":{"response-rewrite":{"body":"${desc}"}},"upstream":{"nodes":{"127.0.0.1:1980":1},"type":"roundrobin"}}`;
    const res = await h.req('PUT', '/apisix/admin/routes/1', { body });
    expect(res.status, res.text).toBe(201);
    expect(res.body.value.plugins['response-rewrite'].body).toBe('[{'.repeat(3000) + '"' + ']}'.repeat(3000));
  });

  it('the server still answers after all of that', async () => {
    const res = await h.req('GET', '/apisix/admin/routes/1');
    expect(res.status).toBe(200);
  });
});
