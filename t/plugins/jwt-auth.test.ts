/**
 * jwt-auth as APISIX's t/plugin/jwt-auth*.t: Admin API checks with APISIX's
 * messages, then through real sockets tokens signed here with node:crypto
 * for every algorithm, read from header / query / cookie, and every 401 path:
 * malformed, no key claim, unknown key, expired, not yet valid, wrong
 * signature, alg none and alg confusion (an HS256 token keyed with an RS256
 * consumer's public key). The store encrypts `secret` (the default config),
 * so HS authentication also proves decryption.
 */
import { constants, createHmac, generateKeyPairSync, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectEncryptedAtRest, expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';
import { claimsValid, parseJwt } from '../../src/plugins/jwt-auth.js';

let env: Env;
const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** A compact JWS; `key` is an HMAC secret (string/Buffer) or a private KeyObject. */
function jwt(alg: string, payload: Record<string, unknown>, key: string | Buffer | KeyObject, header: Record<string, unknown> = { typ: 'JWT', alg }): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  const data = Buffer.from(input);
  const hash = `sha${alg.slice(2)}`;
  let sig: Buffer;
  if (alg.startsWith('HS')) sig = createHmac(hash, key as string | Buffer).update(input).digest();
  else if (alg === 'EdDSA') sig = cryptoSign(null, data, key as KeyObject);
  else if (alg.startsWith('ES')) sig = cryptoSign(hash, data, { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  else if (alg.startsWith('PS')) sig = cryptoSign(hash, data, { key: key as KeyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 });
  else sig = cryptoSign(hash, data, key as KeyObject);
  return `${input}.${sig.toString('base64url')}`;
}

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaPub = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const asym: Record<string, { privateKey: KeyObject; publicKey: KeyObject }> = {
  RS256: rsa,
  RS512: rsa,
  PS256: rsa,
  ES256: generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  ES384: generateKeyPairSync('ec', { namedCurve: 'P-384' }),
  ES512: generateKeyPairSync('ec', { namedCurve: 'P-521' }),
  EdDSA: generateKeyPairSync('ed25519'),
};
const HS = ['HS256', 'HS384', 'HS512'];
const b64Secret = randomBytes(32);

beforeAll(async () => {
  env = await startEnv();
  await env.put('/apisix/admin/consumers', { username: 'jack', labels: { custom_id: 'c-jack' }, plugins: { 'jwt-auth': { key: 'user-key', secret: 'my-secret-key' } } });
  for (const alg of HS) {
    await env.put('/apisix/admin/consumers', { username: `u_${alg}`, plugins: { 'jwt-auth': { key: `k-${alg}`, secret: `s-${alg}`, algorithm: alg } } });
  }
  for (const [alg, pair] of Object.entries(asym)) {
    const public_key = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await env.put('/apisix/admin/consumers', { username: `u_${alg}`, plugins: { 'jwt-auth': { key: `k-${alg}`, algorithm: alg, public_key } } });
  }
  await env.put('/apisix/admin/consumers', { username: 'b64', plugins: { 'jwt-auth': { key: 'k-b64', secret: b64Secret.toString('base64'), base64_secret: true } } });
  await env.put('/apisix/admin/consumers', { username: 'grace', plugins: { 'jwt-auth': { key: 'k-grace', secret: 'g', lifetime_grace_period: 60 } } });
  await env.put('/apisix/admin/consumers', { username: 'carol' });
  await env.put('/apisix/admin/consumers/carol/credentials/phone', { plugins: { 'jwt-auth': { key: 'carol-phone', secret: 'carol-secret' } } });
  await env.route('jw', '/jw', { 'jwt-auth': {} });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

const jackToken = (extra: Record<string, unknown> = {}) => jwt('HS256', { key: 'user-key', exp: now() + 600, ...extra }, 'my-secret-key');

async function get(path: string, headers: Record<string, string> = {}) {
  return send(`${env.gw.dataUrl}${path}`, { headers });
}

async function expect401(path: string, headers: Record<string, string>, message: string, challenge = 'Bearer realm="jwt"') {
  const res = await get(path, headers);
  expect(res.status, `${path} ${JSON.stringify(headers)}`).toBe(401);
  expect(JSON.parse(res.body)).toEqual({ message });
  expect(res.headers['www-authenticate']).toBe(challenge);
}

async function putConsumer(plugin: unknown) {
  return env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'bad', plugins: { 'jwt-auth': plugin } });
}

describe('jwt-auth: Admin API', () => {
  const prefix = 'invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: ';

  it('refuses consumer confs as APISIX does, with its messages', async () => {
    const cases: Array<[unknown, string | RegExp]> = [
      [{ key: 123, secret: 's' }, `${prefix}property "key" validation failed: wrong type: expected string, got number`],
      [{ secret: 's' }, `${prefix}property "key" is required`],
      [{ key: '', secret: 's' }, /"key" validation failed: string too short, expected at least 1, got 0/],
      [{ key: 'k', secret: '' }, /"secret" validation failed: string too short, expected at least 1, got 0/],
      [{ key: 'k' }, `${prefix}property "secret" is required when using HS based algorithms`],
      [{ key: 'k', algorithm: 'HS512' }, `${prefix}property "secret" is required when using HS based algorithms`],
      [{ key: 'k', secret: '^^^', base64_secret: true }, `${prefix}base64_secret required but the secret is not in base64 format`],
      [{ key: 'k', algorithm: 'RS256' }, /failed to validate dependent schema for "algorithm"/],
      [{ key: 'k', algorithm: 'ES256', secret: 's' }, /failed to validate dependent schema for "algorithm"/],
      [{ key: 'k', secret: 's', algorithm: 'none' }, /"algorithm"/],
      [{ key: 'k', secret: 's', lifetime_grace_period: -1 }, /property "lifetime_grace_period" validation failed/],
    ];
    for (const [conf, msg] of cases) {
      const r = await putConsumer(conf);
      expect(r.status, JSON.stringify(conf)).toBe(400);
      if (typeof msg === 'string') expect(r.body.error_msg, JSON.stringify(conf)).toBe(msg);
      else expect(r.body.error_msg, JSON.stringify(conf)).toMatch(msg);
    }
    // An asymmetric algorithm needs no secret.
    const ok = await putConsumer({ key: 'k-ok', algorithm: 'RS256', public_key: rsaPub });
    expect(ok.status).toBe(201);
    expect((await env.gw.admin('DELETE', '/apisix/admin/consumers/bad')).status).toBe(200);
  });

  it('refuses a key another consumer or credential holds', async () => {
    const dup = await putConsumer({ key: 'user-key', secret: 'x' });
    expect(dup.status).toBe(400);
    expect(dup.body.error_msg).toBe('duplicate key of plugin jwt-auth found with consumer: jack');
    const dupCred = await putConsumer({ key: 'carol-phone', secret: 'x' });
    expect(dupCred.body.error_msg).toBe('duplicate key of plugin jwt-auth found with credential: phone of consumer: carol');
  });

  it('refuses bad route confs', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ claims_to_verify: ['iat'] }, /claims_to_verify/],
      [{ claims_to_verify: ['exp', 'exp'] }, /claims_to_verify/],
      [{ key_claim_name: '' }, /key_claim_name/],
      [{ hide_credentials: 1 }, /property "hide_credentials" validation failed: wrong type: expected boolean, got number/],
      [{ realm: 'a\\b' }, /realm/],
    ];
    await expectRouteConfsRefused(env, 'jwt-auth', bad);
  });

  it('stores the secret encrypted: an admin reads it back, a viewer sees only the ciphertext', async () => {
    await expectEncryptedAtRest(env, '/apisix/admin/consumers/jack', 'jwt-auth', 'secret', 'my-secret-key');
  });

  it('has no signing endpoint (APISIX 3.x removed /apisix/plugin/jwt/sign)', async () => {
    expect((await get('/apisix/plugin/jwt/sign?key=user-key')).status).toBe(404);
  });
});

describe('jwt-auth: data plane', () => {
  it('identifies the consumer from the header (with or without Bearer), the query or the cookie', async () => {
    const token = jackToken();
    const ways: Array<Record<string, string>> = [
      { authorization: `Bearer ${token}` },
      { authorization: `bearer ${token}` },
      { authorization: token },
      { cookie: `a=1; jwt=${token}; b=2` },
    ];
    for (const headers of ways) {
      const res = await get('/jw', { ...headers, 'x-consumer-username': 'forged', 'x-credential-identifier': 'forged' });
      expect(res.status, JSON.stringify(headers)).toBe(200);
      const h = env.up.seen.at(-1)!.headers;
      expect(h['x-consumer-username']).toBe('jack');
      expect(h['x-consumer-custom-id']).toBe('c-jack');
      expect(h['x-credential-identifier']).toBeUndefined();
    }
    expect((await get(`/jw?jwt=${token}&x=1`)).status).toBe(200);
    // Not hidden by default.
    expect(env.up.seen.at(-1)!.url).toBe(`/jw?jwt=${token}&x=1`);
  });

  it('the header wins over the query, the query over the cookie', async () => {
    const bad = 'not-a-token';
    await expect401(`/jw?jwt=${jackToken()}`, { authorization: bad }, 'JWT token invalid');
    await expect401(`/jw?jwt=${bad}`, { cookie: `jwt=${jackToken()}` }, 'JWT token invalid');
  });

  it('verifies every algorithm with the consumer\'s secret or public key', async () => {
    for (const alg of HS) {
      const res = await get('/jw', { authorization: `Bearer ${jwt(alg, { key: `k-${alg}` }, `s-${alg}`)}` });
      expect(res.status, alg).toBe(200);
      expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe(`u_${alg}`);
    }
    for (const [alg, pair] of Object.entries(asym)) {
      const res = await get('/jw', { authorization: `Bearer ${jwt(alg, { key: `k-${alg}`, exp: now() + 60 }, pair.privateKey)}` });
      expect(res.status, alg).toBe(200);
      expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe(`u_${alg}`);
    }
    const b64 = await get('/jw', { authorization: jwt('HS256', { key: 'k-b64' }, b64Secret) });
    expect(b64.status).toBe(200);
    // A base64_secret consumer's secret is the decoded bytes, not the text.
    await expect401('/jw', { authorization: jwt('HS256', { key: 'k-b64' }, b64Secret.toString('base64')) }, 'failed to verify jwt');
  });

  it('refuses malformed tokens and tokens that do not name a consumer', async () => {
    await expect401('/jw', {}, 'Missing JWT token in request');
    await expect401(
      '/jw?jwt=invalid-eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJrZXkiOiJ1c2VyLWtleSIsImV4cCI6MTU2Mzg3MDUwMX0.pPNVvh-TQsdDzorRwa-uuiLYiEBODscp9wv0cwD6c68',
      {},
      'JWT token invalid',
    );
    await expect401('/jw', { authorization: 'Bearer invalid-eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.x.y' }, 'JWT token invalid');
    await expect401('/jw', { authorization: 'Bearer a.b' }, 'JWT token invalid');
    await expect401('/jw', { authorization: `Bearer ${b64u({ alg: 'HS256' })}.${b64u('[1]')}.x` }, 'JWT token invalid');
    await expect401('/jw', { authorization: jwt('HS256', { sub: 'x' }, 'my-secret-key') }, 'missing user key in JWT token');
    await expect401('/jw', { authorization: jwt('HS256', { key: 'nobody' }, 'my-secret-key') }, 'Invalid user key in JWT token');
    await expect401('/jw', { authorization: jwt('HS256', { key: 42 }, 'my-secret-key') }, 'Invalid user key in JWT token');
    expect(env.up.seen).toHaveLength(0);
  });

  it('refuses wrong signatures, alg none, a mismatched alg and alg confusion with "failed to verify jwt"', async () => {
    await expect401('/jw', { authorization: jackToken().slice(0, -4) + 'AAAA' }, 'failed to verify jwt');
    await expect401('/jw', { authorization: jwt('HS256', { key: 'user-key' }, 'other-secret') }, 'failed to verify jwt');
    // alg none: no signature at all, or one made anyway.
    await expect401('/jw', { authorization: `${b64u({ typ: 'JWT', alg: 'none' })}.${b64u({ key: 'user-key' })}.` }, 'failed to verify jwt');
    await expect401('/jw', { authorization: jwt('HS256', { key: 'user-key' }, 'my-secret-key', { alg: 'none' }) }, 'failed to verify jwt');
    // Right secret, but the header claims HS512 for an HS256 consumer.
    await expect401('/jw', { authorization: jwt('HS512', { key: 'user-key' }, 'my-secret-key') }, 'failed to verify jwt');
    // Alg confusion: HS256 keyed with the RS256 consumer's public key PEM.
    await expect401('/jw', { authorization: jwt('HS256', { key: 'k-RS256' }, rsaPub) }, 'failed to verify jwt');
    // An ES256 consumer and an RS256 signature by another key; an EdDSA token signed by a foreign key.
    await expect401('/jw', { authorization: jwt('RS256', { key: 'k-ES256' }, rsa.privateKey) }, 'failed to verify jwt');
    await expect401('/jw', { authorization: jwt('EdDSA', { key: 'k-EdDSA' }, generateKeyPairSync('ed25519').privateKey) }, 'failed to verify jwt');
    // ES256 in DER form, not JWS's raw r||s.
    const der = jwt('ES256', { key: 'k-ES256' }, asym.ES256!.privateKey).split('.');
    const derSig = cryptoSign('sha256', Buffer.from(`${der[0]}.${der[1]}`), asym.ES256!.privateKey).toString('base64url');
    await expect401('/jw', { authorization: `${der[0]}.${der[1]}.${derSig}` }, 'failed to verify jwt');
    expect(env.up.seen).toHaveLength(0);
  });

  it('checks exp and nbf, with the consumer\'s lifetime_grace_period', async () => {
    await expect401('/jw', { authorization: jackToken({ exp: now() - 5 }) }, 'failed to verify jwt');
    await expect401('/jw', { authorization: jackToken({ nbf: now() + 30 }) }, 'failed to verify jwt');
    await expect401('/jw', { authorization: jackToken({ exp: String(now() + 60) }) }, 'failed to verify jwt');
    // APISIX's own expired token (exp 2019).
    await expect401(
      '/jw?jwt=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJrZXkiOiJ1c2VyLWtleSIsImV4cCI6MTU2Mzg3MDUwMX0.pPNVvh-TQsdDzorRwa-uuiLYiEBODscp9wv0cwD6c68',
      {},
      'failed to verify jwt',
    );
    expect((await get('/jw', { authorization: jackToken({ nbf: now() - 5 }) })).status).toBe(200);
    // Without exp a token is accepted when claims_to_verify is not set.
    expect((await get('/jw', { authorization: jwt('HS256', { key: 'user-key' }, 'my-secret-key') })).status).toBe(200);
    // Within the grace period.
    expect((await get('/jw', { authorization: jwt('HS256', { key: 'k-grace', exp: now() - 30 }, 'g') })).status).toBe(200);
    expect((await get('/jw', { authorization: jwt('HS256', { key: 'k-grace', nbf: now() + 30 }, 'g') })).status).toBe(200);
    await expect401('/jw', { authorization: jwt('HS256', { key: 'k-grace', exp: now() - 90 }, 'g') }, 'failed to verify jwt');
  });

  it('claims_to_verify makes the listed claims required', async () => {
    await env.route('jw-claims', '/jw-claims', { 'jwt-auth': { claims_to_verify: ['nbf'] } });
    await expect401('/jw-claims', { authorization: jackToken() }, 'failed to verify jwt');
    expect((await get('/jw-claims', { authorization: jackToken({ nbf: now() - 5 }) })).status).toBe(200);
    // exp is not checked when only nbf is listed.
    expect((await get('/jw-claims', { authorization: jackToken({ nbf: now() - 5, exp: now() - 5 }) })).status).toBe(200);
  });

  it('identifies a consumer through a credential and sends the credential id upstream', async () => {
    const res = await get('/jw', { authorization: jwt('HS256', { key: 'carol-phone' }, 'carol-secret') });
    expect(res.status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('carol');
    expect(env.up.seen.at(-1)!.headers['x-credential-identifier']).toBe('phone');
  });

  it('uses the configured header, query, cookie and key claim names', async () => {
    await env.route('jw-names', '/jw-names', { 'jwt-auth': { header: 'X-Token', query: 't', cookie: 'tok', key_claim_name: 'iss' } });
    const token = jwt('HS256', { iss: 'user-key' }, 'my-secret-key');
    await expect401('/jw-names', { authorization: token }, 'Missing JWT token in request');
    await expect401('/jw-names', { authorization: jackToken(), 'x-token': jackToken() }, 'missing user key in JWT token');
    expect((await get('/jw-names', { 'x-token': `Bearer ${token}` })).status).toBe(200);
    expect((await get(`/jw-names?t=${token}`)).status).toBe(200);
    expect((await get('/jw-names', { cookie: `tok=${token}` })).status).toBe(200);
  });

  it('hide_credentials removes the token from the header, the query or the cookie', async () => {
    await env.route('jw-hide', '/jw-hide', { 'jwt-auth': { hide_credentials: true } });
    const token = jackToken();
    expect((await get('/jw-hide', { authorization: `Bearer ${token}` })).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers.authorization).toBeUndefined();
    expect((await get(`/jw-hide?a=1&jwt=${token}&b=2`)).status).toBe(200);
    expect(env.up.seen.at(-1)!.url).toBe('/jw-hide?a=1&b=2');
    expect((await get('/jw-hide', { cookie: `a=1; jwt=${token}; b=x.y` })).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers.cookie).toBe('a=1; b=x.y');
    expect((await get('/jw-hide', { cookie: `jwt=${token}` })).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers.cookie).toBeUndefined();
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('jack');
  });

  it('uses a custom realm in the challenge', async () => {
    await env.route('jw-realm', '/jw-realm', { 'jwt-auth': { realm: 'api' } });
    await expect401('/jw-realm', {}, 'Missing JWT token in request', 'Bearer realm="api"');
  });

  it('falls back to the anonymous consumer, and answers "Invalid user authorization" when it does not exist', async () => {
    await env.put('/apisix/admin/consumers', { username: 'anon' });
    await env.route('jw-anon', '/jw-anon', { 'jwt-auth': { anonymous_consumer: 'anon', hide_credentials: true } });
    expect((await get('/jw-anon')).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('anon');
    expect((await get('/jw-anon', { authorization: jwt('HS256', { key: 'user-key' }, 'wrong') })).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('anon');
    expect(env.up.seen.at(-1)!.headers.authorization).toBeUndefined();
    expect((await get('/jw-anon', { authorization: jackToken() })).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('jack');

    await env.route('jw-noanon', '/jw-noanon', { 'jwt-auth': { anonymous_consumer: 'nobody' } });
    await expect401('/jw-noanon', {}, 'Invalid user authorization');
  });

  it('sees consumer changes live: a new secret replaces the old one', async () => {
    await env.put('/apisix/admin/consumers', { username: 'temp', plugins: { 'jwt-auth': { key: 'k-temp', secret: 't1' } } });
    expect((await get('/jw', { authorization: jwt('HS256', { key: 'k-temp' }, 't1') })).status).toBe(200);
    await env.put('/apisix/admin/consumers', { username: 'temp', plugins: { 'jwt-auth': { key: 'k-temp', secret: 't2' } } });
    await expect401('/jw', { authorization: jwt('HS256', { key: 'k-temp' }, 't1') }, 'failed to verify jwt');
    expect((await get('/jw', { authorization: jwt('HS256', { key: 'k-temp' }, 't2') })).status).toBe(200);
  });
});

describe('jwt-auth: parser (unit)', () => {
  it('applies APISIX\'s claim comparisons exactly', () => {
    const t = 1_000_000;
    expect(claimsValid({}, undefined, 0, t)).toBe(true);
    expect(claimsValid({ exp: t + 1 }, undefined, 0, t)).toBe(true);
    expect(claimsValid({ exp: t }, undefined, 0, t)).toBe(false);
    expect(claimsValid({ nbf: t - 1 }, undefined, 0, t)).toBe(true);
    // parser.lua: `nbf < now + leeway`, so a token is refused during its nbf second.
    expect(claimsValid({ nbf: t }, undefined, 0, t)).toBe(false);
    expect(claimsValid({ nbf: t }, undefined, 1, t)).toBe(true);
    expect(claimsValid({}, ['exp'], 0, t)).toBe(false);
    expect(claimsValid({}, [], 0, t)).toBe(true);
  });

  it('parses a compact JWS and refuses anything else', () => {
    const token = jwt('HS256', { key: 'k' }, 's');
    expect(parseJwt(token)?.payload).toEqual({ key: 'k' });
    expect(parseJwt(`${token}.x.y`)).toBeUndefined();
    expect(parseJwt('a.b.c')).toBeUndefined();
  });
});
