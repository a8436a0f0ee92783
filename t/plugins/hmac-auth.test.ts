/**
 * hmac-auth, APISIX 3.x's scheme, as APISIX's t/plugin/hmac-auth*.t drive it:
 * Admin API checks, then requests signed by a client written here from
 * APISIX's docs (docs/en/latest/plugins/hmac-auth.md: keyId, the listed
 * headers and `@request-target`, each line ending in "\n", HMAC, base64), not
 * by the plugin's own code. The store encrypts `secret_key` (the default
 * config), so every accepted signature also proves decryption.
 */
import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectEncryptedAtRest, expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';

let env: Env;

interface Signed {
  keyId: string;
  secret: string;
  algorithm?: 'hmac-sha1' | 'hmac-sha256' | 'hmac-sha512';
  method?: string;
  /** Path and query as sent. */
  target: string;
  /** Header names as listed in the signature, in order. */
  signHeaders: string[];
  headers: Record<string, string>;
  /** A signature computed over other values than those sent (tampering). */
  signedValues?: Record<string, string>;
}

/** The client side of the scheme, independent of src/plugins/hmac-auth.ts. */
function sign(s: Signed): string {
  const algorithm = s.algorithm ?? 'hmac-sha256';
  const lines = [s.keyId];
  for (const h of s.signHeaders) {
    if (h === '@request-target') lines.push(`${s.method ?? 'GET'} ${s.target}`);
    else lines.push(`${h}: ${(s.signedValues ?? s.headers)[h]}`);
  }
  const mac = createHmac(algorithm.slice(5), s.secret).update(lines.join('\n') + '\n').digest('base64');
  return `Signature keyId="${s.keyId}",algorithm="${algorithm}",headers="${s.signHeaders.join(' ')}",signature="${mac}"`;
}

const gmt = (offsetS = 0) => new Date(Date.now() + offsetS * 1000).toUTCString();

async function signedRequest(path: string, s: Partial<Signed> & { body?: string } = {}) {
  const headers = { date: gmt(), ...(s.headers ?? {}) };
  const full: Signed = { keyId: 'alice-key', secret: 'alice-secret', target: path, signHeaders: ['@request-target', 'date'], ...s, headers };
  return send(`${env.gw.dataUrl}${path}`, { method: s.method ?? 'GET', headers: { ...headers, authorization: sign(full) }, body: s.body });
}

beforeAll(async () => {
  env = await startEnv();
  await env.put('/apisix/admin/consumers', { username: 'alice', plugins: { 'hmac-auth': { key_id: 'alice-key', secret_key: 'alice-secret' } } });
  await env.put('/apisix/admin/consumers', { username: 'bob' });
  await env.put('/apisix/admin/consumers/bob/credentials/ci', { plugins: { 'hmac-auth': { key_id: 'bob-ci', secret_key: 'bob-ci-secret' } } });
  await env.put('/apisix/admin/consumers', { username: 'guest' });
  await env.route('h', '/h*', { 'hmac-auth': {} });
  await env.route('strict', '/strict', { 'hmac-auth': { allowed_algorithms: ['hmac-sha512'], signed_headers: ['date', 'x-custom'], clock_skew: 60, hide_credentials: true } });
  await env.route('body', '/body', { 'hmac-auth': { validate_request_body: true, max_req_body_size: 64 } });
  await env.route('anon', '/anon', { 'hmac-auth': { anonymous_consumer: 'guest', realm: 'sig' } });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

describe('hmac-auth: Admin API', () => {
  it('is listed, refuses bad route and consumer confs with APISIX messages, and stores secret_key encrypted', async () => {
    const list = await env.gw.admin('GET', '/apisix/admin/plugins/list');
    expect(list.body).toContain('hmac-auth');
    await expectRouteConfsRefused(env, 'hmac-auth', [
      [{ allowed_algorithms: [] }, /property "allowed_algorithms" validation failed: expect array to have at least 1 items/],
      [{ allowed_algorithms: ['hmac-md5'] }, /property "allowed_algorithms" validation failed: failed to validate item 1: matches none of the enum values/],
      [{ clock_skew: 0 }, /property "clock_skew" validation failed: expected 0 to be at least 1/],
      [{ signed_headers: [''] }, /property "signed_headers" validation failed/],
      [{ realm: 'a"b' }, /property "realm" validation failed/],
    ]);
    const noSecret = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'x', plugins: { 'hmac-auth': { key_id: 'x' } } });
    expect(noSecret.status).toBe(400);
    expect(noSecret.body.error_msg).toBe('invalid plugins configuration: failed to check the configuration of plugin hmac-auth err: property "secret_key" is required');
    const dup = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'y', plugins: { 'hmac-auth': { key_id: 'alice-key', secret_key: 's' } } });
    expect(dup.status).toBe(400);
    expect(dup.body.error_msg).toBe('duplicate key_id of plugin hmac-auth found with consumer: alice');
    await expectEncryptedAtRest(env, '/apisix/admin/consumers/alice', 'hmac-auth', 'secret_key', 'alice-secret');
  });
});

describe('hmac-auth: data plane', () => {
  it('accepts a signature from each algorithm and tells the upstream who called', async () => {
    for (const algorithm of ['hmac-sha1', 'hmac-sha256', 'hmac-sha512'] as const) {
      const res = await signedRequest('/h/a?x=1&y=2', { algorithm });
      expect(res.status, algorithm).toBe(200);
    }
    expect(env.up.seen).toHaveLength(3);
    expect(env.up.seen[0]!.headers['x-consumer-username']).toBe('alice');
    expect(env.up.seen[0]!.headers.authorization).toMatch(/^Signature /);
    const cred = await signedRequest('/h/b', { keyId: 'bob-ci', secret: 'bob-ci-secret' });
    expect(cred.status).toBe(200);
    expect(env.up.seen[3]!.headers['x-consumer-username']).toBe('bob');
    expect(env.up.seen[3]!.headers['x-credential-identifier']).toBe('ci');
  });

  it('answers 401 with APISIX messages and the hmac challenge', async () => {
    const none = await send(`${env.gw.dataUrl}/h/a`);
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body)).toEqual({ message: "client request can't be validated: missing Authorization header" });
    expect(none.headers['www-authenticate']).toBe('hmac realm="hmac"');
    const basic = await send(`${env.gw.dataUrl}/h/a`, { headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    expect(JSON.parse(basic.body)).toEqual({ message: "client request can't be validated: Authorization header does not start with 'Signature'" });
    const refusals: Array<[string, Partial<Signed>]> = [
      ['wrong secret', { secret: 'nope' }],
      ['unknown key', { keyId: 'mallory', secret: 'x' }],
      ['other path than signed', { target: '/h/other' }],
      ['other method than signed', { method: 'POST' }],
      ['stale date', { headers: { date: gmt(-400) } }],
      ['future date', { headers: { date: gmt(400) } }],
      ['date not in HTTP form', { headers: { date: new Date().toISOString() } }],
      ['date not signed', { signHeaders: ['@request-target'] }],
    ];
    for (const [why, s] of refusals) {
      const res =
        why === 'other method than signed'
          ? await send(`${env.gw.dataUrl}/h/a`, {
              method: 'GET',
              headers: { date: gmt(), authorization: sign({ keyId: 'alice-key', secret: 'alice-secret', method: 'POST', target: '/h/a', signHeaders: ['@request-target', 'date'], headers: { date: gmt() } }) },
            })
          : await signedRequest('/h/a', s);
      expect(res.status, why).toBe(401);
      expect(JSON.parse(res.body), why).toEqual({ message: "client request can't be validated" });
    }
    const noDate = await send(`${env.gw.dataUrl}/h/a`, {
      headers: { authorization: sign({ keyId: 'alice-key', secret: 'alice-secret', target: '/h/a', signHeaders: ['@request-target'], headers: {} }) },
    });
    expect(noDate.status).toBe(401);
    expect(env.up.seen).toHaveLength(0);
  });

  it('enforces allowed_algorithms and signed_headers, rejects a tampered header, and hides credentials', async () => {
    const headers = { 'x-custom': 'v1' };
    const signHeaders = ['@request-target', 'date', 'x-custom'];
    const ok = await signedRequest('/strict', { algorithm: 'hmac-sha512', headers, signHeaders });
    expect(ok.status).toBe(200);
    expect(env.up.seen[0]!.headers.authorization).toBeUndefined();
    expect((await signedRequest('/strict', { algorithm: 'hmac-sha256', headers, signHeaders })).status).toBe(401);
    expect((await signedRequest('/strict', { algorithm: 'hmac-sha512', headers, signHeaders: ['@request-target', 'date'] })).status).toBe(401);
    const tampered = await signedRequest('/strict', { algorithm: 'hmac-sha512', headers, signHeaders, signedValues: { 'x-custom': 'v0', date: gmt() } });
    expect(tampered.status).toBe(401);
    // clock_skew 60 here: two minutes old is too old.
    expect((await signedRequest('/strict', { algorithm: 'hmac-sha512', headers: { ...headers, date: gmt(-120) }, signHeaders })).status).toBe(401);
    expect(env.up.seen).toHaveLength(1);
  });

  it('validate_request_body: the Digest must be the body\'s SHA-256, and a body over max_req_body_size is a 413', async () => {
    const body = '{"amount":10}';
    const digest = `SHA-256=${createHash('sha256').update(body).digest('base64')}`;
    const ok = await signedRequest('/body', { method: 'POST', body, headers: { digest } });
    expect(ok.status).toBe(200);
    expect(env.up.seen[0]!.body).toBe(body);
    const changed = await signedRequest('/body', { method: 'POST', body: '{"amount":99}', headers: { digest } });
    expect(changed.status).toBe(401);
    const noDigest = await signedRequest('/body', { method: 'POST', body });
    expect(noDigest.status).toBe(401);
    const big = 'x'.repeat(100);
    const tooBig = await signedRequest('/body', { method: 'POST', body: big, headers: { digest: `SHA-256=${createHash('sha256').update(big).digest('base64')}` } });
    expect(tooBig.status).toBe(413);
    expect(JSON.parse(tooBig.body).message).toMatch(/greater than the maximum size 64/);
    const emptyDigest = `SHA-256=${createHash('sha256').update('').digest('base64')}`;
    expect((await signedRequest('/body', { headers: { digest: emptyDigest } })).status).toBe(200);
    expect(env.up.seen).toHaveLength(2);
  });

  it('falls back to anonymous_consumer on a failed signature, but still lets a good one identify its consumer', async () => {
    const anon = await send(`${env.gw.dataUrl}/anon`);
    expect(anon.status).toBe(200);
    expect(env.up.seen[0]!.headers['x-consumer-username']).toBe('guest');
    const signed = await signedRequest('/anon');
    expect(signed.status).toBe(200);
    expect(env.up.seen[1]!.headers['x-consumer-username']).toBe('alice');
  });
});
