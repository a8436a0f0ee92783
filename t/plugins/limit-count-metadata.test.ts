/**
 * The limit-count plugin_metadata renames the quota headers, as
 * apisix/plugins/limit-count/init.lua reads plugin_metadata("limit-count"):
 * on requests let through and on rejections, falling back to X-RateLimit-*
 * per field and once the metadata is deleted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

describe('limit-count plugin_metadata', () => {
  it('renames the quota headers on passed and rejected requests; an unset field keeps its default', async () => {
    await env.put('/apisix/admin/plugin_metadata/limit-count', { limit_header: 'X-Quota-Limit', remaining_header: 'X-Quota-Left' });
    await env.route('lcm1', '/lcm1', { 'limit-count': { count: 1, time_window: 60, rejected_code: 429 } });

    const ok = await send(`${env.gw.dataUrl}/lcm1`);
    expect(ok.status).toBe(200);
    expect(ok.headers['x-quota-limit']).toBe('1');
    expect(ok.headers['x-quota-left']).toBe('0');
    expect(ok.headers['x-ratelimit-reset']).toBe('60');
    expect(ok.headers['x-ratelimit-limit']).toBeUndefined();
    expect(ok.headers['x-ratelimit-remaining']).toBeUndefined();

    const rejected = await send(`${env.gw.dataUrl}/lcm1`);
    expect(rejected.status).toBe(429);
    expect(rejected.headers['x-quota-limit']).toBe('1');
    expect(rejected.headers['x-quota-left']).toBe('0');
    expect(Number(rejected.headers['x-ratelimit-reset'])).toBeGreaterThan(0);
    expect(rejected.headers['x-ratelimit-limit']).toBeUndefined();
  });

  it('a metadata change applies to the next request; deleting it brings X-RateLimit-* back', async () => {
    await env.put('/apisix/admin/plugin_metadata/limit-count', { limit_header: 'L', remaining_header: 'R', reset_header: 'Reset-In' });
    await env.route('lcm2', '/lcm2', { 'limit-count': { count: 5, time_window: 60 } });
    const renamed = await send(`${env.gw.dataUrl}/lcm2`);
    expect([renamed.headers.l, renamed.headers.r, renamed.headers['reset-in']]).toEqual(['5', '4', '60']);

    const del = await env.gw.admin('DELETE', '/apisix/admin/plugin_metadata/limit-count');
    expect(del.status).toBe(200);
    // Any later write reaching the data plane means the delete did too (revision order).
    await env.route('lcm2-sync', '/lcm2-sync', {});
    const plain = await send(`${env.gw.dataUrl}/lcm2`);
    expect(plain.headers['x-ratelimit-limit']).toBe('5');
    expect(plain.headers['x-ratelimit-remaining']).toBe('3');
    expect(plain.headers.l).toBeUndefined();
  });

  it('a header name that is not a string is refused, naming the field, and changes nothing', async () => {
    const r = await env.gw.admin('PUT', '/apisix/admin/plugin_metadata/limit-count', { limit_header: 7 });
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toMatch(/limit_header/);
    expect((await env.gw.admin('GET', '/apisix/admin/plugin_metadata/limit-count')).status).toBe(404);
  });
});
