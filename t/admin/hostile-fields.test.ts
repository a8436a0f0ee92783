/**
 * Values that read as something else than they are: secret references in core
 * fields (APISIX resolves them only in plugin confs and an ssl's certificates),
 * and upstream node keys that are not `host[:port]`. Each is refused with a
 * 400, nothing stored; the forms that are valid still pass.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

let h: AdminHarness;
beforeAll(async () => {
  h = await startAdmin({ plugins: ['proxy-rewrite', 'key-auth'] });
});
afterAll(() => h.close());

async function refused(path: string, body: unknown, msg: RegExp): Promise<void> {
  const res = await h.req('PUT', path, { body });
  expect(res.status, res.text).toBe(400);
  expect(res.body.error_msg).toMatch(msg);
  expect(await h.store.get(path.replace('/admin', ''))).toBeUndefined();
}

const nodes = { '127.0.0.1:1980': 1 };

describe('secret references outside the places APISIX resolves them', () => {
  it('upstream hash_on, pass_host, scheme and upstream_host are checked as written', async () => {
    await refused('/apisix/admin/upstreams/t', { nodes, type: 'chash', hash_on: '$env://PATH', key: 'remote_addr' }, /"hash_on".*enum/);
    await refused('/apisix/admin/upstreams/s', { nodes, scheme: '$env://PATH' }, /"scheme".*enum/);
    await refused('/apisix/admin/upstreams/p', { nodes, pass_host: '$ENV://PATH' }, /"pass_host".*enum/);
    await refused('/apisix/admin/upstreams/h', { nodes, pass_host: 'rewrite', upstream_host: '$env://PORTICO_ADMIN_KEY' }, /"upstream_host".*pattern/);
  });

  it('route remote_addr, host, uri-level fields and an inline upstream', async () => {
    await refused('/apisix/admin/routes/ra', { uri: '/a', remote_addr: '$env://PATH', upstream: { nodes } }, /"remote_addr"/);
    await refused('/apisix/admin/routes/h', { uri: '/a', host: '$env://HOST', upstream: { nodes } }, /"host".*pattern/);
    await refused('/apisix/admin/routes/m', { uri: '/a', methods: ['$env://M'], upstream: { nodes } }, /"methods".*enum/);
    await refused('/apisix/admin/routes/u', { uri: '/a', upstream: { nodes, scheme: '$secret://vault/x' } }, /"scheme".*enum/);
    await refused('/apisix/admin/routes/s', { uri: '/a', status: '$env://S', upstream: { nodes } }, /"status"/);
  });

  it('an upstream tls client_cert (not resolved by APISIX either) must be a certificate', async () => {
    await refused('/apisix/admin/upstreams/tls', { nodes, tls: { client_cert: '$env://CERT', client_key: '$env://KEY' } }, /"client_cert".*too short/);
  });

  it('still accepted where APISIX resolves them: plugin confs and an ssl certificate and key', async () => {
    const route = await h.req('PUT', '/apisix/admin/routes/ok', {
      body: { uri: '/a', plugins: { 'proxy-rewrite': { host: '$env://REWRITE_HOST' } }, upstream: { nodes } },
    });
    expect(route.status, route.text).toBe(201);
    const ssl = await h.req('PUT', '/apisix/admin/ssls/1', { body: { sni: 'a.example', cert: '$env://CERT', key: '$secret://vault/1/key' } });
    expect(ssl.status, ssl.text).toBe(201);
  });

  it('a free-form core string keeps the reference as a literal: it is never resolved there', async () => {
    // APISIX's schema takes any string as `type`; the value is stored as written, not as PATH's value.
    const res = await h.req('PUT', '/apisix/admin/upstreams/lit', { body: { nodes, type: '$env://PATH', desc: '$env://PATH' } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.value.desc).toBe('$env://PATH');
  });
});

describe('upstream node keys', () => {
  for (const [key, msg] of [
    ['not a host!!', /invalid host "not a host!!"/],
    ['a/b:80', /invalid host "a\/b"/],
    ['__proto__', /invalid host "__proto__"/],
    ['-a.example:80', /invalid host/],
    ['a..b:80', /invalid host/],
    ['[::1', /invalid host/],
    ['[zz::1]:80', /invalid host/],
    ['a.example:80x', /invalid port 80x/],
    ['a.example:', /invalid port/],
    ['a.example:1.5', /invalid port/],
    ['a.example:0', /invalid port 0/],
    ['a.example:65536', /invalid port 65536/],
  ] as const) {
    it(`refuses ${JSON.stringify(key)}`, async () => {
      // Raw JSON so "__proto__" is an own key, as any client's JSON makes it.
      await refused(`/apisix/admin/upstreams/n${Buffer.from(key).toString('hex')}`, `{"nodes":{${JSON.stringify(key)}:1}}`, msg);
    });
  }

  it('accepts host names, IPv4, bracketed and bare IPv6, with or without a port', async () => {
    const res = await h.req('PUT', '/apisix/admin/upstreams/good', {
      body: { nodes: { 'a.example': 1, 'my_service:8080': 1, 'x-1.example.com.:80': 1, '10.0.0.1:1': 1, '[::1]:8080': 1, '[::1]': 1, '::1': 1, localhost: 1 } },
    });
    expect(res.status, res.text).toBe(201);
  });
});
