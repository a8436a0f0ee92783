/**
 * redirect through real sockets: `uri` with variables, `regex_uri` (and its
 * pass-through when it does not match), `ret_code`, `encode_uri`,
 * `append_query_string`, `http_to_https` to the configured HTTPS port, header
 * injection through a decoded path, and schema refusals.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { redirectPort } from '../../src/plugins/redirect.js';
import { expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv({ plugin_attr: { redirect: { https_port: 9443 } } });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

const get = (path: string, opts: { method?: string; headers?: Record<string, string> } = {}) => send(`${env.gw.dataUrl}${path}`, opts);

describe('redirect', () => {
  it('uri with $var and ${var}, default 302 and a chosen ret_code', async () => {
    await env.route('rd1', '/rd1/*', { redirect: { uri: '/new${uri}?host=$host&missing=$nope' } });
    const res = await get('/rd1/page', { headers: { host: 'example.com' } });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/new/rd1/page?host=example.com&missing=');
    await env.route('rd2', '/rd2', { redirect: { uri: 'https://other.example/x', ret_code: 301 } });
    const r2 = await get('/rd2');
    expect(r2.status).toBe(301);
    expect(r2.headers.location).toBe('https://other.example/x');
    expect(env.up.seen).toHaveLength(0);
  });

  it('regex_uri substitutes the path; a path it does not match is proxied', async () => {
    await env.route('rd3', '/rd3/*', { redirect: { regex_uri: ['^/rd3/(\\w+)/(\\w+)$', '/to/$2/${1}'] } });
    const res = await get('/rd3/aa/bb?q=1');
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/to/bb/aa');
    const pass = await get('/rd3/only-one');
    expect(pass.status).toBe(200);
    expect(env.up.seen).toHaveLength(1);
  });

  it('append_query_string adds the client query with ? or &', async () => {
    await env.route('rd4', '/rd4', { redirect: { uri: '/plain', append_query_string: true } });
    expect((await get('/rd4?a=1&b=2')).headers.location).toBe('/plain?a=1&b=2');
    expect((await get('/rd4')).headers.location).toBe('/plain');
    await env.route('rd5', '/rd5', { redirect: { uri: '/q?x=1', append_query_string: true } });
    expect((await get('/rd5?a=1')).headers.location).toBe('/q?x=1&a=1');
  });

  it('encode_uri percent-encodes the path part as nginx does, and leaves the query alone', async () => {
    await env.route('rd6', '/rd6/*', { redirect: { uri: '/enc$uri?k=a b', encode_uri: true } });
    const res = await get('/rd6/%E4%B8%AD%20x%23');
    expect(res.headers.location).toBe('/enc/rd6/%E4%B8%AD%20x%23?k=a b');
  });

  it('a decoded CR/LF in the path cannot add a header', async () => {
    await env.route('rd7', '/rd7/*', { redirect: { uri: '/n$uri' } });
    const res = await get('/rd7/a%0d%0aSet-Cookie:%20evil=1');
    expect(res.status).toBe(302);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers.location).toBe('/n/rd7/a%0D%0ASet-Cookie: evil=1');
  });

  it('http_to_https: 301 for GET/HEAD, 308 otherwise, to plugin_attr.redirect.https_port; https requests pass', async () => {
    await env.route('rd8', '/rd8', { redirect: { http_to_https: true } }, { methods: ['GET', 'HEAD', 'POST'] });
    const res = await get('/rd8?a=1', { headers: { host: 'shop.example:9080' } });
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe('https://shop.example:9443/rd8?a=1');
    const post = await get('/rd8', { method: 'POST', headers: { host: 'shop.example' } });
    expect(post.status).toBe(308);
    expect(post.headers.location).toBe('https://shop.example:9443/rd8');
    // Behind a TLS-terminating proxy, X-Forwarded-Proto says the client already used HTTPS (as APISIX reads it).
    const pass = await get('/rd8', { headers: { 'x-forwarded-proto': 'https' } });
    expect(pass.status).toBe(200);
    expect(env.up.seen).toHaveLength(1);
  });

  it('the HTTPS port: https_port, else the first apisix.ssl.listen port; 443 and 0 write none', () => {
    expect(redirectPort({ https_port: 8443 }, [9443])).toBe(8443);
    expect(redirectPort({}, [9443, 9444])).toBe(9443);
    expect(redirectPort({}, [443])).toBeUndefined();
    expect(redirectPort({}, [0])).toBeUndefined();
    expect(redirectPort({}, [])).toBeUndefined();
  });

  it('refuses bad confs', async () => {
    await expectRouteConfsRefused(env, 'redirect', [
      [{ uri: '/a', regex_uri: ['^/a', '/b'] }, /redirect/],
      [{}, /redirect/],
      [{ http_to_https: true, append_query_string: true }, /only one of `http_to_https` and `append_query_string` can be configured\./],
      [{ uri: '/a', ret_code: 100 }, /ret_code/],
      [{ regex_uri: ['^/a'] }, /regex_uri/],
      [{ regex_uri: ['^/(a', '/b'] }, /invalid regex_uri \(\^\/\(a, \/b\), err:/],
    ]);
  });
});
