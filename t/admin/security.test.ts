/**
 * Checklist 1–3: every admin route is behind the allow-list and the token
 * check (enumerated from what fastify registered, so a route added later is
 * covered without editing this test), X-Forwarded-For does not bypass the
 * allow-list, viewer keys are read-only, and the response headers.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminRoutes } from '../../src/admin/server.js';
import { PORTICO_VERSION } from '../../src/core/config/version.js';
import { startAdmin, type AdminHarness } from './harness.js';

/** A concrete path for a registered route pattern. */
function concrete(url: string): string {
  return url.replace(/:[a-z_]+/g, 'kafka-proxy').replace(/\*$/, 'routes/1');
}

describe('admin auth (allowed address)', () => {
  let h: AdminHarness;
  beforeAll(async () => {
    h = await startAdmin();
  });
  afterAll(() => h.close());

  it('registers the routes APISIX has', () => {
    const urls = adminRoutes(h.app).map((r) => `${r.method} ${r.url}`);
    expect(urls).toContain('GET /apisix/admin/plugins/list');
    expect(urls).toContain('PUT /apisix/admin/*');
    expect(urls).toContain('HEAD /apisix/admin');
  });

  it('answers 401 on every registered route without a key, and with a wrong key', async () => {
    const routes = adminRoutes(h.app).filter((r) => !(r.method === 'HEAD' && r.url === '/apisix/admin'));
    expect(routes.length).toBeGreaterThan(8);
    for (const r of routes) {
      const path = concrete(r.url);
      const none = await h.req(r.method, path, { key: null, body: r.method === 'GET' || r.method === 'HEAD' ? undefined : { uri: '/x' } });
      expect(none.status, `${r.method} ${path}`).toBe(401);
      if (r.method !== 'HEAD') {
        expect(none.body).toEqual({ error_msg: 'failed to check token', description: 'missing apikey' });
      }
      expect(none.headers['x-api-version']).toBeUndefined();
      const wrong = await h.req(r.method, path, { key: 'nope' });
      expect(wrong.status, `${r.method} ${path}`).toBe(401);
    }
    // Nothing was written by the refused requests.
    expect((await h.store.list('/apisix/')).items).toEqual([]);
  });

  it('covers paths no route matches (404 handler) and unknown methods', async () => {
    expect((await h.req('GET', '/apisix/admin', { key: null })).status).toBe(401);
    expect((await h.req('GET', '/elsewhere', { key: null })).status).toBe(401);
    expect((await h.req('GET', '/apisix/adminx/routes', { key: null })).status).toBe(401);
    const unknown = await h.req('GET', '/apisix/admin/nothing', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ error_msg: 'Unsupported resource type: nothing' });
  });

  it('stream_routes: 400 "stream mode is disabled" for every method once authenticated, as APISIX without stream_proxy', async () => {
    expect((await h.req('GET', '/apisix/admin/stream_routes', { key: null })).status).toBe(401);
    for (const [method, path] of [
      ['GET', '/apisix/admin/stream_routes'],
      ['GET', '/apisix/admin/stream_routes/1'],
      ['PUT', '/apisix/admin/stream_routes/1'],
      ['POST', '/apisix/admin/stream_routes'],
      ['DELETE', '/apisix/admin/stream_routes/1'],
    ] as const) {
      const res = await h.req(method, path, method === 'GET' || method === 'DELETE' ? {} : { body: { upstream: { nodes: { '127.0.0.1:1': 1 } } } });
      expect(res.status, `${method} ${path}`).toBe(400);
      expect(res.body).toEqual({ error_msg: 'stream mode is disabled, can not add stream routes' });
    }
    expect((await h.store.list('/apisix/')).items).toEqual([]);
  });

  it('HEAD /apisix/admin is 200 without a key', async () => {
    const res = await h.req('HEAD', '/apisix/admin', { key: null });
    expect(res.status).toBe(200);
  });

  it('takes the key from api_key, then X-API-KEY, then the cookie', async () => {
    expect((await h.req('GET', `/apisix/admin/routes?api_key=${h.adminKey}`, { key: null })).status).toBe(200);
    expect((await h.req('GET', '/apisix/admin/routes', { key: null, headers: { cookie: `a=b; X-API-KEY=${h.adminKey}` } })).status).toBe(200);
    // The query argument wins over a valid header.
    const q = await h.req('GET', '/apisix/admin/routes?api_key=wrong', {});
    expect(q.status).toBe(401);
    expect(q.body.description).toBe('wrong apikey');
    // An empty key is missing, not a match for an unset key.
    const empty = await h.req('GET', '/apisix/admin/routes', { key: '' });
    expect(empty.body.description).toBe('missing apikey');
  });

  it('lets a viewer read but not write', async () => {
    expect((await h.req('GET', '/apisix/admin/routes', { key: h.viewerKey })).status).toBe(200);
    expect((await h.req('GET', '/apisix/admin/plugins/list', { key: h.viewerKey })).status).toBe(200);
    for (const m of ['PUT', 'POST', 'PATCH', 'DELETE']) {
      const res = await h.req(m, '/apisix/admin/upstreams/1', { key: h.viewerKey, body: { nodes: { '127.0.0.1:1980': 1 } } });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error_msg: 'failed to check token', description: 'invalid method for role viewer' });
    }
    expect((await h.req('GET', '/apisix/admin/upstreams/1')).status).toBe(404);
  });

  it('sends Server, X-API-VERSION and CORS headers, and answers preflight', async () => {
    const res = await h.req('GET', '/apisix/admin/routes');
    expect(res.headers.server).toBe(`Portico/${PORTICO_VERSION}`);
    expect(res.headers['x-api-version']).toBe('v3');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers['access-control-expose-headers']).toBe('*');
    expect(res.headers['access-control-max-age']).toBe('3600');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.text.endsWith('\n')).toBe(true);
    const pre = await h.req('OPTIONS', '/apisix/admin/routes/1', { key: null });
    expect(pre.status).toBe(200);
    expect(pre.text).toBe('');
    expect(pre.headers['access-control-allow-methods']).toBe('POST, GET, PUT, OPTIONS, DELETE, PATCH');
    expect(pre.headers['access-control-allow-headers']).toBe('*');
  });
});

describe('admin settings', () => {
  it('admin_key_required: false bypasses the token; CORS off; server tokens off', async () => {
    const h = await startAdmin({
      config: { apisix: { enable_server_tokens: false }, deployment: { admin: { admin_key_required: false, enable_admin_cors: false } } },
    });
    try {
      const res = await h.req('GET', '/apisix/admin/routes', { key: null });
      expect(res.status).toBe(200);
      expect(res.headers.server).toBe('Portico');
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      expect((await h.req('PUT', '/apisix/admin/upstreams/1', { key: 'anything', body: { nodes: { '127.0.0.1:1980': 1 } } })).status).toBe(201);
    } finally {
      await h.close();
    }
  });
});

describe('no usable key', () => {
  it('refuses every request when the configured keys are empty', async () => {
    const h = await startAdmin({ config: { deployment: { admin: { admin_key: [{ name: 'admin', key: '', role: 'admin' }] } } } });
    try {
      expect((await h.req('GET', '/apisix/admin/routes', { key: '' })).status).toBe(401);
      expect((await h.req('GET', '/apisix/admin/routes', { key: null })).status).toBe(401);
      expect((await h.req('GET', '/apisix/admin/routes?api_key=', { key: null })).status).toBe(401);
    } finally {
      await h.close();
    }
  });
});

describe('allow_admin', () => {
  let denied: AdminHarness;
  let allowed: AdminHarness;
  beforeAll(async () => {
    denied = await startAdmin({ config: { deployment: { admin: { allow_admin: ['10.0.0.0/8'] } } } });
    allowed = await startAdmin({ config: { deployment: { admin: { allow_admin: ['10.0.0.0/8', '127.0.0.1/32'] } } } });
  });
  afterAll(async () => {
    await denied.close();
    await allowed.close();
  });

  it('answers 403 on every registered route from an address outside the list, even with a valid key', async () => {
    const routes = adminRoutes(denied.app);
    for (const r of routes) {
      const res = await denied.req(r.method, concrete(r.url), { body: r.method === 'GET' || r.method === 'HEAD' ? undefined : { uri: '/x' } });
      expect(res.status, `${r.method} ${r.url}`).toBe(403);
    }
    expect((await denied.req('OPTIONS', '/apisix/admin/routes', {})).status).toBe(403);
    expect((await denied.req('GET', '/nowhere', {})).status).toBe(403);
    expect((await denied.store.list('/apisix/')).items).toEqual([]);
  });

  it('does not trust X-Forwarded-For or X-Real-IP', async () => {
    const res = await denied.req('GET', '/apisix/admin/routes', {
      headers: { 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1', forwarded: 'for=127.0.0.1' },
    });
    expect(res.status).toBe(403);
    // And on an allowed socket, a forwarded "outside" address does not lock the client out either.
    const ok = await allowed.req('GET', '/apisix/admin/routes', { headers: { 'x-forwarded-for': '8.8.8.8' } });
    expect(ok.status).toBe(200);
  });

  it('admits a listed address', async () => {
    expect((await allowed.req('GET', '/apisix/admin/routes')).status).toBe(200);
    expect((await allowed.req('GET', '/apisix/admin/routes', { key: null })).status).toBe(401);
  });

  it('refuses an invalid CIDR at start-up', async () => {
    await expect(startAdmin({ config: { deployment: { admin: { allow_admin: ['127.0.0.1/33'] } } } })).rejects.toThrow(/allow_admin/);
    await expect(startAdmin({ config: { deployment: { admin: { allow_admin: ['localhost'] } } } })).rejects.toThrow(/allow_admin/);
  });

  it('raw socket: a request with a spoofed forwarding header over a plain connection is refused', async () => {
    const res = await request(`${denied.url}/apisix/admin/routes?api_key=${denied.adminKey}`, { headers: { 'x-forwarded-for': '10.1.2.3' } });
    expect(res.statusCode).toBe(403);
    await res.body.text();
  });
});
