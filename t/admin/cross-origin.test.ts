/**
 * Cross-site writes. A browser attaches cookies to requests any page makes,
 * so an admin key kept in the X-API-KEY cookie must not work for a request
 * another origin started: the cookie is honoured only when the request shows
 * no sign of coming from another origin (its Origin, if any, is the Admin
 * API's own; its Sec-Fetch-Site, if any, is same-origin or none). And a body
 * is read as JSON only under a JSON content type, or the form type `curl -d`
 * sends (APISIX's documented examples use it): `text/plain` and
 * `multipart/form-data`, which an HTML form can send, are refused with 415.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin();
});
afterAll(() => h.close());

const body = '{"nodes":{"127.0.0.1:1980":1}}';
const cookie = (): Record<string, string> => ({ cookie: `X-API-KEY=${h.adminKey}` });

describe('the X-API-KEY cookie', () => {
  it('is refused on a request from another origin, and nothing is written', async () => {
    const res = await h.req('PUT', '/apisix/admin/upstreams/csrf', { key: null, body, contentType: 'application/x-www-form-urlencoded', headers: { ...cookie(), origin: 'http://evil.example' } });
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error_msg: 'failed to check token', description: 'the X-API-KEY cookie is not accepted on a cross-origin request' });
    expect(await h.store.get('/apisix/upstreams/csrf')).toBeUndefined();
    const site = await h.req('GET', '/apisix/admin/routes', { key: null, headers: { ...cookie(), 'sec-fetch-site': 'cross-site' } });
    expect(site.status).toBe(401);
    const nullOrigin = await h.req('GET', '/apisix/admin/routes', { key: null, headers: { ...cookie(), origin: 'null' } });
    expect(nullOrigin.status).toBe(401);
  });

  it('still works from the Admin API\'s own origin and from tools that send no Origin (curl -b)', async () => {
    const own = await h.req('PUT', '/apisix/admin/upstreams/own', { key: null, body, headers: { ...cookie(), origin: `http://127.0.0.1:${h.port}`, 'sec-fetch-site': 'same-origin' } });
    expect(own.status, own.text).toBe(201);
    const curl = await h.req('GET', '/apisix/admin/upstreams/own', { key: null, headers: cookie() });
    expect(curl.status).toBe(200);
  });

  it('a key in the header or the query is not a browser credential: Origin does not matter', async () => {
    const res = await h.req('GET', '/apisix/admin/routes', { headers: { origin: 'http://dashboard.example' } });
    expect(res.status).toBe(200);
  });
});

describe('body content types', () => {
  it('text/plain and multipart/form-data bodies are refused with 415, nothing written', async () => {
    for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'multipart/form-data; boundary=x', 'application/xml']) {
      const res = await h.req('PUT', '/apisix/admin/upstreams/ct', { body, contentType: type });
      expect(res.status, type).toBe(415);
      expect(res.body.error_msg).toMatch(/unsupported content type .*send the body as application\/json/);
    }
    expect(await h.store.get('/apisix/upstreams/ct')).toBeUndefined();
  });

  it('JSON types, curl -d\'s form type and no content type are read as JSON', async () => {
    for (const type of ['application/json', 'application/json; charset=utf-8', 'application/merge-patch+json', 'application/x-www-form-urlencoded']) {
      const res = await h.req('PUT', '/apisix/admin/upstreams/ok', { body, contentType: type });
      expect(res.status, type).toBeLessThan(300);
    }
  });
});
