import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  // Plaintext keys in the store here; the encrypted-at-rest path has its own test below.
  env = await startEnv({ apisix: { data_encryption: { enable_encrypt_fields: false } } });
  await env.put('/apisix/admin/consumers', { username: 'jack', labels: { custom_id: 'c-77' }, plugins: { 'key-auth': { key: 'jack-key' } } });
  await env.put('/apisix/admin/consumers', { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

describe('key-auth', () => {
  it('answers 401 with APISIX messages and a WWW-Authenticate challenge', async () => {
    await env.route('ka1', '/ka1', { 'key-auth': {} });
    const missing = await send(`${env.gw.dataUrl}/ka1`);
    expect(missing.status).toBe(401);
    expect(JSON.parse(missing.body)).toEqual({ message: 'Missing API key in request' });
    expect(missing.headers['www-authenticate']).toBe('apikey realm="key"');
    const wrong = await send(`${env.gw.dataUrl}/ka1`, { headers: { apikey: 'nope' } });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body)).toEqual({ message: 'Invalid API key in request' });
    expect(env.up.seen).toHaveLength(0);
  });

  it('identifies the consumer from the header or the query and tells the upstream who called', async () => {
    await env.route('ka2', '/ka2', { 'key-auth': {} });
    const byHeader = await send(`${env.gw.dataUrl}/ka2`, {
      headers: { apikey: 'jack-key', 'x-consumer-username': 'forged', 'x-credential-identifier': 'forged' },
    });
    expect(byHeader.status).toBe(200);
    const h = env.up.seen.at(-1)!.headers;
    expect(h['x-consumer-username']).toBe('jack');
    expect(h['x-consumer-custom-id']).toBe('c-77');
    expect(h['x-credential-identifier']).toBeUndefined();
    // Kept by default (hide_credentials false).
    expect(h.apikey).toBe('jack-key');

    const byQuery = await send(`${env.gw.dataUrl}/ka2?apikey=rose-key&x=1`);
    expect(byQuery.status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('rose');
    expect(env.up.seen.at(-1)!.url).toBe('/ka2?apikey=rose-key&x=1');
  });

  it('uses the configured header/query names and hides the credential from the upstream', async () => {
    await env.route('ka3', '/ka3', { 'key-auth': { header: 'X-Key', query: 'k', hide_credentials: true } });
    expect((await send(`${env.gw.dataUrl}/ka3`, { headers: { apikey: 'jack-key' } })).status).toBe(401);
    expect((await send(`${env.gw.dataUrl}/ka3`, { headers: { 'x-key': 'jack-key' } })).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-key']).toBeUndefined();
    expect((await send(`${env.gw.dataUrl}/ka3?a=1&k=rose-key&b=2`)).status).toBe(200);
    expect(env.up.seen.at(-1)!.url).toBe('/ka3?a=1&b=2');
  });

  it('reads a query key with a bad escape as nginx does, the same as the arg_* variable', async () => {
    // ngx.req.get_uri_args (lua-nginx-module's ngx_http_lua_unescape_uri): `+` is a space, %XX is decoded,
    // and a `%` not followed by two hex digits stays as written. One parser serves key-auth and arg_*.
    await env.put('/apisix/admin/consumers', { username: 'esc1', plugins: { 'key-auth': { key: '%zz' } } });
    await env.put('/apisix/admin/consumers', { username: 'esc2', plugins: { 'key-auth': { key: 'a b%zzA' } } });
    await env.route('ka6', '/ka6', { 'key-auth': {} });
    const bare = await send(`${env.gw.dataUrl}/ka6?apikey=%zz`);
    expect(bare.status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('esc1');
    expect(env.up.seen.at(-1)!.url).toBe('/ka6?apikey=%zz');

    // The route matches only when arg_apikey reads the same value key-auth authenticates with.
    await env.route('ka7', '/ka7', { 'key-auth': { hide_credentials: true } }, { vars: [['arg_apikey', '==', 'a b%zzA']] });
    const mixed = await send(`${env.gw.dataUrl}/ka7?x=1&apikey=a+b%zz%41&y=%zz`);
    expect(mixed.status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('esc2');
    // Hidden from the upstream; the other arguments pass as the client wrote them.
    expect(env.up.seen.at(-1)!.url).toBe('/ka7?x=1&y=%zz');
    // Read as written (`a+b%zz%41`) the key is someone else's: nobody.
    expect((await send(`${env.gw.dataUrl}/ka6?apikey=a%2Bb%25zz%2541`)).status).toBe(401);
  });

  it('sees consumer changes live: a deleted consumer is refused, a re-keyed one uses the new key', async () => {
    await env.route('ka4', '/ka4', { 'key-auth': {} });
    await env.put('/apisix/admin/consumers', { username: 'temp', plugins: { 'key-auth': { key: 'temp-1' } } });
    expect((await send(`${env.gw.dataUrl}/ka4`, { headers: { apikey: 'temp-1' } })).status).toBe(200);
    await env.put('/apisix/admin/consumers', { username: 'temp', plugins: { 'key-auth': { key: 'temp-2' } } });
    expect((await send(`${env.gw.dataUrl}/ka4`, { headers: { apikey: 'temp-1' } })).status).toBe(401);
    expect((await send(`${env.gw.dataUrl}/ka4`, { headers: { apikey: 'temp-2' } })).status).toBe(200);
    expect((await env.gw.admin('DELETE', '/apisix/admin/consumers/temp')).status).toBe(200);
    await env.route('ka4', '/ka4', { 'key-auth': {} }); // waits for the delete to apply
    expect((await send(`${env.gw.dataUrl}/ka4`, { headers: { apikey: 'temp-2' } })).status).toBe(401);
  });

  it('falls back to an anonymous consumer when configured', async () => {
    await env.put('/apisix/admin/consumers', { username: 'anon', plugins: { 'key-auth': { key: 'anon-unused-key' } } });
    await env.route('ka5', '/ka5', { 'key-auth': { anonymous_consumer: 'anon', hide_credentials: true } });
    const res = await send(`${env.gw.dataUrl}/ka5`, { headers: { apikey: 'wrong' } });
    expect(res.status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('anon');
    expect(env.up.seen.at(-1)!.headers.apikey).toBeUndefined();
  });

  it('an anonymous consumer needs no key-auth conf of its own', async () => {
    await env.put('/apisix/admin/consumers', { username: 'guest', plugins: {} });
    await env.route('ka6', '/ka6', { 'key-auth': { anonymous_consumer: 'guest' } });
    const res = await send(`${env.gw.dataUrl}/ka6`);
    expect(res.status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('guest');
  });

  it('rejects a consumer without key and a bad route conf', async () => {
    const c = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'nokey', plugins: { 'key-auth': {} } });
    expect(c.status).toBe(400);
    expect(c.body.error_msg).toMatch(/key-auth/);
    expect(c.body.error_msg).toMatch(/key/);
    const r = await env.gw.admin('PUT', '/apisix/admin/routes/kabad', {
      uri: '/kabad',
      plugins: { 'key-auth': { hide_credentials: 'yes' } },
      upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } },
    });
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toMatch(/hide_credentials/);
  });
});

describe('key-auth with encrypted keys at rest (the default config)', () => {
  let enc: Env;
  beforeAll(async () => {
    enc = await startEnv();
    await enc.put('/apisix/admin/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
  });
  afterAll(async () => {
    await enc?.close();
  });

  it('stores the key encrypted but still authenticates with the plaintext key', async () => {
    const stored = await enc.gw.admin('GET', '/apisix/admin/consumers/jack');
    expect(stored.status).toBe(200);
    await enc.route('enc1', '/enc1', { 'key-auth': {} });
    const res = await send(`${enc.gw.dataUrl}/enc1`, { headers: { apikey: 'jack-key' } });
    expect(res.status).toBe(200);
    expect(enc.up.seen.at(-1)!.headers['x-consumer-username']).toBe('jack');
  });
});
