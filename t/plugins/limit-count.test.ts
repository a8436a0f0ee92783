import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectEncryptedAtRest, send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

describe('limit-count', () => {
  it('allows count requests per window, then rejects with rejected_code and quota headers', async () => {
    await env.route('lc1', '/lc1', { 'limit-count': { count: 2, time_window: 60 } });
    const a = await send(`${env.gw.dataUrl}/lc1`);
    expect(a.status).toBe(200);
    expect(a.headers['x-ratelimit-limit']).toBe('2');
    expect(a.headers['x-ratelimit-remaining']).toBe('1');
    expect(a.headers['x-ratelimit-reset']).toBe('60');
    const b = await send(`${env.gw.dataUrl}/lc1`);
    expect(b.status).toBe(200);
    expect(b.headers['x-ratelimit-remaining']).toBe('0');
    const c = await send(`${env.gw.dataUrl}/lc1`);
    expect(c.status).toBe(503);
    expect(c.headers['x-ratelimit-remaining']).toBe('0');
    expect(Number(c.headers['x-ratelimit-reset'])).toBeGreaterThan(0);
    expect(env.up.seen).toHaveLength(2);
  });

  it('quota headers join the upstream headers: repeated lines kept, hop-by-hop and Connection-listed ones dropped', async () => {
    env.up.replies.set('/lc-relay', {
      headers: { 'set-cookie': ['a=1', 'b=2'], connection: 'x-up-hop', 'x-up-hop': 'secret', 'x-up-kept': 'yes' },
    });
    await env.route('lc-relay', '/lc-relay', { 'limit-count': { count: 5, time_window: 60 } });
    const r = await send(`${env.gw.dataUrl}/lc-relay`);
    expect(r.status).toBe(200);
    expect(r.headers['x-ratelimit-remaining']).toBe('4');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(r.headers['x-up-kept']).toBe('yes');
    expect(r.headers['x-up-hop']).toBeUndefined();
  });

  it('opens a new window when the old one ends', async () => {
    await env.route('lc2', '/lc2', { 'limit-count': { count: 1, time_window: 1, rejected_code: 429, rejected_msg: 'slow down' } });
    expect((await send(`${env.gw.dataUrl}/lc2`)).status).toBe(200);
    const rejected = await send(`${env.gw.dataUrl}/lc2`);
    expect(rejected.status).toBe(429);
    expect(JSON.parse(rejected.body)).toEqual({ error_msg: 'slow down' });
    await new Promise((r) => setTimeout(r, 1100));
    expect((await send(`${env.gw.dataUrl}/lc2`)).status).toBe(200);
  });

  it('counts per key: a header var, with the client address as fallback', async () => {
    await env.route('lc3', '/lc3', { 'limit-count': { count: 1, time_window: 60, key: 'http_x_user', show_limit_quota_header: false } });
    const first = await send(`${env.gw.dataUrl}/lc3`, { headers: { 'x-user': 'a' } });
    expect(first.status).toBe(200);
    expect(first.headers['x-ratelimit-limit']).toBeUndefined();
    expect((await send(`${env.gw.dataUrl}/lc3`, { headers: { 'x-user': 'b' } })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lc3`, { headers: { 'x-user': 'a' } })).status).toBe(503);
    // No header: keyed by remote_addr, a separate bucket that then runs out too.
    expect((await send(`${env.gw.dataUrl}/lc3`)).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lc3`)).status).toBe(503);
  });

  it('var_combination and constant keys', async () => {
    await env.route('lc4', '/lc4', { 'limit-count': { count: 1, time_window: 60, key_type: 'var_combination', key: '$http_x_a-$arg_b' } });
    expect((await send(`${env.gw.dataUrl}/lc4?b=1`, { headers: { 'x-a': 'p' } })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lc4?b=2`, { headers: { 'x-a': 'p' } })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lc4?b=1`, { headers: { 'x-a': 'p' } })).status).toBe(503);
    await env.route('lc5', '/lc5', { 'limit-count': { count: 1, time_window: 60, key_type: 'constant', key: 'everyone' } });
    expect((await send(`${env.gw.dataUrl}/lc5`, { headers: { 'x-a': '1' } })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lc5`, { headers: { 'x-a': '2' } })).status).toBe(503);
  });

  it('keeps counters across unrelated config changes, starts afresh when its own conf changes', async () => {
    await env.route('lc6', '/lc6', { 'limit-count': { count: 2, time_window: 60 } });
    expect((await send(`${env.gw.dataUrl}/lc6`)).status).toBe(200);
    await env.route('lc6-other', '/lc6-other', { 'proxy-rewrite': { uri: '/x' } });
    expect((await send(`${env.gw.dataUrl}/lc6`)).headers['x-ratelimit-remaining']).toBe('0');
    expect((await send(`${env.gw.dataUrl}/lc6`)).status).toBe(503);
    await env.route('lc6', '/lc6', { 'limit-count': { count: 3, time_window: 60 } });
    const fresh = await send(`${env.gw.dataUrl}/lc6`);
    expect(fresh.status).toBe(200);
    expect(fresh.headers['x-ratelimit-remaining']).toBe('2');
  });

  it('separates routes, unless they share a group', async () => {
    await env.route('lc7a', '/lc7a', { 'limit-count': { count: 1, time_window: 60 } });
    await env.route('lc7b', '/lc7b', { 'limit-count': { count: 1, time_window: 60 } });
    expect((await send(`${env.gw.dataUrl}/lc7a`)).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lc7b`)).status).toBe(200);
    await env.route('lc8a', '/lc8a', { 'limit-count': { count: 1, time_window: 60, group: 'g1' } });
    await env.route('lc8b', '/lc8b', { 'limit-count': { count: 1, time_window: 60, group: 'g1' } });
    expect((await send(`${env.gw.dataUrl}/lc8a`)).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lc8b`)).status).toBe(503);
  });

  it('rejects bad confs naming the field', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ time_window: 60 }, /count/],
      [{ count: 0, time_window: 60 }, /count/],
      [{ count: 1, time_window: 60, rejected_code: 600 }, /rejected_code/],
      [{ count: 1, time_window: 60, key_type: 'cookie' }, /key_type/],
      // policy redis without redis_host: APISIX's "then clause did not match" (t/plugin/limit-count-redis.t).
      [{ count: 1, time_window: 60, policy: 'redis' }, /then clause did not match/],
      [{ count: 1, time_window: 60, policy: 'redis-cluster', redis_cluster_nodes: ['127.0.0.1:7000'] }, /else clause did not match/],
      [{ count: 1, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_timeout: 0 }, /then clause did not match/],
      [{ count: 1, time_window: 60, window_type: 'rolling' }, /window_type/],
      [{ count: 1, time_window: 60, policy: 'redis-sentinel' }, /policy redis-sentinel is not supported yet/],
      [{ count: 1, time_window: 60, rules: [{ count: 1, time_window: 1, key: '$remote_addr' }] }, /rules is not supported yet/],
      [{ count: 1, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', sync_interval: 1 }, /sync_interval is not supported yet/],
      [{ count: 1, time_window: 60, redis_host: '127.0.0.1' }, /redis_host is only used with policy "redis", not "local"/],
      [{ count: 1, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_cluster_name: 'c' }, /redis_cluster_name is only used with policy "redis-cluster", not "redis"/],
    ];
    for (const [conf, msg] of bad) {
      const res = await env.gw.admin('PUT', '/apisix/admin/routes/lcbad', {
        uri: '/lcbad',
        plugins: { 'limit-count': conf },
        upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } },
      });
      expect(res.status, JSON.stringify(conf)).toBe(400);
      expect(res.body.error_msg).toMatch(/limit-count/);
      expect(res.body.error_msg).toMatch(msg);
    }
  });
});

describe('limit-count with Redis settings', () => {
  it('stores redis_password encrypted, as APISIX encrypt_fields it', async () => {
    await env.route('lc-enc', '/lc-enc', { 'limit-count': { count: 1, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_password: 's3cret', allow_degradation: true } });
    await expectEncryptedAtRest(env, '/apisix/admin/routes/lc-enc', 'limit-count', 'redis_password', 's3cret');
  });
});

describe('limit-count beside cors: OPTIONS does not bypass rate limiting when limit-count runs first', () => {
  it('by default (cors 4000 before limit-count 1002) preflights are answered without spending quota, as in APISIX', async () => {
    await env.route('cl1', '/cl1', { cors: {}, 'limit-count': { count: 1, time_window: 60 } });
    for (let i = 0; i < 3; i++) expect((await send(`${env.gw.dataUrl}/cl1`, { method: 'OPTIONS' })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/cl1`)).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/cl1`)).status).toBe(503);
  });

  it('with limit-count ordered first via _meta.priority, OPTIONS does not bypass rate limiting', async () => {
    await env.route('cl2', '/cl2', { cors: {}, 'limit-count': { count: 2, time_window: 60, _meta: { priority: 5000 } } });
    expect((await send(`${env.gw.dataUrl}/cl2`, { method: 'OPTIONS' })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/cl2`, { method: 'OPTIONS' })).status).toBe(200);
    const third = await send(`${env.gw.dataUrl}/cl2`, { method: 'OPTIONS' });
    expect(third.status).toBe(503);
    // Counted once per request, not once per phase: the quota is spent, GETs are refused too.
    expect((await send(`${env.gw.dataUrl}/cl2`)).status).toBe(503);
    expect(env.up.seen).toHaveLength(0);
  });

  it('a global-rule limit-count also limits preflights of a cors route', async () => {
    await env.put('/apisix/admin/global_rules/lc', {
      // Only OPTIONS, so the helper's own sync requests are not limited.
      plugins: { 'limit-count': { count: 1, time_window: 60, _meta: { filter: [['request_method', '==', 'OPTIONS']] } } },
    });
    try {
      await env.route('cl3', '/cl3', { cors: {} });
      expect((await send(`${env.gw.dataUrl}/cl3`, { method: 'OPTIONS' })).status).toBe(200);
      expect((await send(`${env.gw.dataUrl}/cl3`, { method: 'OPTIONS' })).status).toBe(503);
    } finally {
      await env.gw.admin('DELETE', '/apisix/admin/global_rules/lc');
    }
  });
});
