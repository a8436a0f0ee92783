import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { send, startEnv, type Env } from './helpers.js';

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

describe('cors', () => {
  it('answers a preflight itself with the CORS headers and no upstream call', async () => {
    await env.route('c1', '/c1', { cors: { allow_origins: 'http://a.test,http://b.test', allow_methods: 'GET,POST', allow_headers: 'X-Custom', expose_headers: 'X-Out', max_age: 100 } });
    const res = await send(`${env.gw.dataUrl}/c1`, {
      method: 'OPTIONS',
      headers: { origin: 'http://b.test', 'access-control-request-method': 'POST' },
    });
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe('http://b.test');
    expect(res.headers['access-control-allow-methods']).toBe('GET,POST');
    expect(res.headers['access-control-allow-headers']).toBe('X-Custom');
    expect(res.headers['access-control-expose-headers']).toBe('X-Out');
    expect(res.headers['access-control-max-age']).toBe('100');
    expect(res.headers.vary).toMatch(/Origin/);
    expect(env.up.seen).toHaveLength(0);
  });

  it('adds headers to proxied responses for allowed origins only', async () => {
    await env.route('c2', '/c2', { cors: { allow_origins: 'http://a.test,http://b.test' } });
    const ok = await send(`${env.gw.dataUrl}/c2`, { headers: { origin: 'http://a.test' } });
    expect(ok.status).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe('http://a.test');
    const evil = await send(`${env.gw.dataUrl}/c2`, { headers: { origin: 'http://evil.test' } });
    expect(evil.status).toBe(200);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    await env.route('c3', '/c3', { cors: {} });
    const star = await send(`${env.gw.dataUrl}/c3`, { headers: { origin: 'http://x.test' } });
    expect(star.headers['access-control-allow-origin']).toBe('*');
    expect(star.headers['access-control-allow-methods']).toBe('*');
    expect(star.headers['access-control-max-age']).toBe('5');
  });

  it('matches origins by regex and sends credentials', async () => {
    await env.route('c4', '/c4', {
      cors: { allow_origins: 'http://fixed.test', allow_origins_by_regex: ['^http://.*\\.good\\.test$'], allow_credential: true, allow_methods: 'GET', allow_headers: 'X-A' },
    });
    const ok = await send(`${env.gw.dataUrl}/c4`, { headers: { origin: 'http://app.good.test' } });
    expect(ok.headers['access-control-allow-origin']).toBe('http://app.good.test');
    expect(ok.headers['access-control-allow-credentials']).toBe('true');
    const bad = await send(`${env.gw.dataUrl}/c4`, { headers: { origin: 'http://app.good.test.evil.test' } });
    expect(bad.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('allow_origins_by_metadata: origin lists kept in the cors plugin_metadata, shared by routes and changed live', async () => {
    await env.put('/apisix/admin/plugin_metadata/cors', { allow_origins: { SHOP: 'https://shop.test,https://pay.test', ANY: '*' } });
    await env.route('c5', '/c5', { cors: { allow_origins_by_metadata: ['SHOP'] } });
    const ok = await send(`${env.gw.dataUrl}/c5`, { headers: { origin: 'https://pay.test' } });
    expect(ok.headers['access-control-allow-origin']).toBe('https://pay.test');
    // Not listed: no CORS headers, and the route's default allow_origins '*' does not let it in (as APISIX).
    const other = await send(`${env.gw.dataUrl}/c5`, { headers: { origin: 'https://evil.test' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    // An entry of '*' allows any origin, answered with that origin rather than '*'.
    await env.route('c6', '/c6', { cors: { allow_origins_by_metadata: ['NOPE', 'ANY'] } });
    const any = await send(`${env.gw.dataUrl}/c6`, { headers: { origin: 'https://x.test' } });
    expect(any.headers['access-control-allow-origin']).toBe('https://x.test');
    // With the route's own explicit list too, either source may allow the origin.
    await env.route('c7', '/c7', { cors: { allow_origins_by_metadata: ['SHOP'], allow_origins: 'https://own.test' } });
    expect((await send(`${env.gw.dataUrl}/c7`, { headers: { origin: 'https://own.test' } })).headers['access-control-allow-origin']).toBe('https://own.test');
    expect((await send(`${env.gw.dataUrl}/c7`, { headers: { origin: 'https://shop.test' } })).headers['access-control-allow-origin']).toBe('https://shop.test');
    // A metadata write applies to every route naming the entry, live.
    await env.put('/apisix/admin/plugin_metadata/cors', { allow_origins: { SHOP: 'https://new.test', ANY: '*' } });
    const deadline = Date.now() + 5000;
    let moved = await send(`${env.gw.dataUrl}/c5`, { headers: { origin: 'https://new.test' } });
    while (moved.headers['access-control-allow-origin'] === undefined && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      moved = await send(`${env.gw.dataUrl}/c5`, { headers: { origin: 'https://new.test' } });
    }
    expect(moved.headers['access-control-allow-origin']).toBe('https://new.test');
    expect((await send(`${env.gw.dataUrl}/c5`, { headers: { origin: 'https://pay.test' } })).headers['access-control-allow-origin']).toBeUndefined();
  });

  it("refuses '*' together with allow_credential, and bad origins", async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ allow_credential: true }, /you can not set '\*' for other option when 'allow_credential' is true/],
      [{ allow_credential: true, allow_origins: 'http://a.test', allow_methods: 'GET', allow_headers: '*' }, /allow_credential/],
      [{ allow_origins: 'not an origin' }, /allow_origins/],
      [{ allow_origins_by_regex: ['(unclosed'] }, /cors/],
    ];
    for (const [conf, msg] of bad) {
      const res = await env.gw.admin('PUT', '/apisix/admin/routes/cbad', {
        uri: '/cbad',
        plugins: { cors: conf },
        upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } },
      });
      expect(res.status, JSON.stringify(conf)).toBe(400);
      expect(res.body.error_msg).toMatch(msg);
    }
  });

  it('lets preflights through key-auth (browsers send no credentials) and puts CORS headers on a 401', async () => {
    await env.route('c5', '/c5', { cors: { allow_origins: 'http://a.test' }, 'key-auth': {} });
    const pre = await send(`${env.gw.dataUrl}/c5`, { method: 'OPTIONS', headers: { origin: 'http://a.test' } });
    expect(pre.status).toBe(200);
    const denied = await send(`${env.gw.dataUrl}/c5`, { headers: { origin: 'http://a.test' } });
    expect(denied.status).toBe(401);
    expect(denied.headers['access-control-allow-origin']).toBe('http://a.test');
  });
});
