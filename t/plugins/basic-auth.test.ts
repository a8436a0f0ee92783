/**
 * basic-auth as APISIX's t/plugin/basic-auth*.t: Admin API checks with
 * APISIX's messages, then through real sockets every 401 path with its
 * WWW-Authenticate challenge, consumers and credentials identified for the
 * upstream, hide_credentials and anonymous_consumer. The store encrypts
 * `password` (the default config), so authentication also proves decryption.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectEncryptedAtRest, expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';
import { parseBasic } from '../../src/plugins/basic-auth.js';
import { decodeBase64Strict } from '../../src/plugins/lib/auth-common.js';

let env: Env;
const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

beforeAll(async () => {
  env = await startEnv();
  await env.put('/apisix/admin/consumers', { username: 'foo', labels: { custom_id: 'c-foo' }, plugins: { 'basic-auth': { username: 'foo', password: 'bar' } } });
  await env.put('/apisix/admin/consumers', { username: 'carol' });
  await env.put('/apisix/admin/consumers/carol/credentials/laptop', { plugins: { 'basic-auth': { username: 'carol-l', password: 'secret-l' } } });
  await env.route('ba', '/ba', { 'basic-auth': {} });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

async function expect401(path: string, headers: Record<string, string>, message: string, challenge = 'Basic realm="basic"') {
  const res = await send(`${env.gw.dataUrl}${path}`, { headers });
  expect(res.status, JSON.stringify(headers)).toBe(401);
  expect(JSON.parse(res.body)).toEqual({ message });
  expect(res.headers['www-authenticate']).toBe(challenge);
}

describe('basic-auth: Admin API', () => {
  it('refuses consumer confs without username or password, or of the wrong type, with APISIX messages', async () => {
    const noPassword = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'x1', plugins: { 'basic-auth': { username: 'x1' } } });
    expect(noPassword.status).toBe(400);
    expect(noPassword.body).toEqual({
      error_msg: 'invalid plugins configuration: failed to check the configuration of plugin basic-auth err: property "password" is required',
    });
    const badType = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'x2', plugins: { 'basic-auth': { username: 12, password: 'p' } } });
    expect(badType.status).toBe(400);
    expect(badType.body.error_msg).toContain('property "username" validation failed: wrong type: expected string, got number');
    const notObject = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'x3', plugins: { 'basic-auth': 'blah' } });
    expect(notObject.status).toBe(400);
    expect(notObject.body).toEqual({ error_msg: 'invalid plugins configuration: invalid plugin conf "blah" for plugin [basic-auth]' });
    const cred = await env.gw.admin('PUT', '/apisix/admin/consumers/carol/credentials/bad', { plugins: { 'basic-auth': { password: 'p' } } });
    expect(cred.status).toBe(400);
    expect(cred.body.error_msg).toMatch(/basic-auth err: property "username" is required/);
  });

  it('refuses a username another consumer or credential holds', async () => {
    const dup = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'foo2', plugins: { 'basic-auth': { username: 'foo', password: 'x' } } });
    expect(dup.status).toBe(400);
    expect(dup.body.error_msg).toBe('duplicate username of plugin basic-auth found with consumer: foo');
    const dupCred = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'foo3', plugins: { 'basic-auth': { username: 'carol-l', password: 'x' } } });
    expect(dupCred.status).toBe(400);
    expect(dupCred.body.error_msg).toBe('duplicate username of plugin basic-auth found with credential: laptop of consumer: carol');
  });

  it('refuses bad route confs: hide_credentials not boolean, a realm with a quote, an empty anonymous_consumer', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ hide_credentials: 'yes' }, /property "hide_credentials" validation failed: wrong type: expected boolean, got string/],
      [{ realm: 'a"b' }, /property "realm" validation failed/],
      [{ anonymous_consumer: '' }, /property "anonymous_consumer" validation failed/],
    ];
    await expectRouteConfsRefused(env, 'basic-auth', bad);
  });

  it('stores the password encrypted: an admin reads it back, a viewer sees only the ciphertext', async () => {
    await expectEncryptedAtRest(env, '/apisix/admin/consumers/foo', 'basic-auth', 'password', 'bar');
  });
});

describe('basic-auth: data plane', () => {
  it('answers every failure with 401, APISIX message and the Basic challenge, and forwards nothing', async () => {
    await expect401('/ba', {}, 'Missing authorization in request');
    // Not "Basic ...", not base64, no colon in the decoded text.
    await expect401('/ba', { authorization: 'Bad_header YmFyOmJhcgo=' }, 'Invalid authorization in request');
    await expect401('/ba', { authorization: 'Basic aca_a' }, 'Invalid authorization in request');
    await expect401('/ba', { authorization: 'Basic YmFy' }, 'Invalid authorization in request');
    // Unknown user, wrong password ("foo:foo\n"), a right password's prefix or extension.
    await expect401('/ba', { authorization: 'Basic YmFyOmJhcgo=' }, 'Invalid user authorization');
    await expect401('/ba', { authorization: 'Basic Zm9vOmZvbwo=' }, 'Invalid user authorization');
    await expect401('/ba', { authorization: basic('foo', 'ba') }, 'Invalid user authorization');
    await expect401('/ba', { authorization: basic('foo', 'barr') }, 'Invalid user authorization');
    await expect401('/ba', { authorization: basic('foo', '') }, 'Invalid user authorization');
    // A credential's username is not a consumer name, and a consumer name is not a username.
    await expect401('/ba', { authorization: basic('carol', 'secret-l') }, 'Invalid user authorization');
    expect(env.up.seen).toHaveLength(0);
  });

  it('identifies the consumer, tells the upstream who called and removes forged identity headers', async () => {
    const res = await send(`${env.gw.dataUrl}/ba`, {
      headers: { authorization: 'Basic Zm9vOmJhcg==', 'x-consumer-username': 'forged', 'x-credential-identifier': 'forged' },
    });
    expect(res.status).toBe(200);
    const h = env.up.seen.at(-1)!.headers;
    expect(h['x-consumer-username']).toBe('foo');
    expect(h['x-consumer-custom-id']).toBe('c-foo');
    expect(h['x-credential-identifier']).toBeUndefined();
    // hide_credentials is off by default.
    expect(h.authorization).toBe('Basic Zm9vOmJhcg==');
  });

  it('reads the scheme case-insensitively and ignores whitespace in the decoded text, as APISIX', async () => {
    for (const scheme of ['basic', 'BASIC', 'bASiC']) {
      expect((await send(`${env.gw.dataUrl}/ba`, { headers: { authorization: `${scheme} Zm9vOmJhcg==` } })).status).toBe(200);
    }
    // "foo:bar\n" and padding left off.
    expect((await send(`${env.gw.dataUrl}/ba`, { headers: { authorization: 'Basic Zm9vOmJhcgo=' } })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/ba`, { headers: { authorization: 'Basic Zm9vOmJhcg' } })).status).toBe(200);
  });

  it('identifies a consumer through a credential and sends the credential id upstream; deleting it revokes it live', async () => {
    const res = await send(`${env.gw.dataUrl}/ba`, { headers: { authorization: basic('carol-l', 'secret-l') } });
    expect(res.status).toBe(200);
    const h = env.up.seen.at(-1)!.headers;
    expect(h['x-consumer-username']).toBe('carol');
    expect(h['x-credential-identifier']).toBe('laptop');

    await env.put('/apisix/admin/consumers/carol/credentials/tmp', { plugins: { 'basic-auth': { username: 'carol-t', password: 't1' } } });
    expect((await send(`${env.gw.dataUrl}/ba`, { headers: { authorization: basic('carol-t', 't1') } })).status).toBe(200);
    await env.put('/apisix/admin/consumers/carol/credentials/tmp', { plugins: { 'basic-auth': { username: 'carol-t', password: 't2' } } });
    await expect401('/ba', { authorization: basic('carol-t', 't1') }, 'Invalid user authorization');
    expect((await send(`${env.gw.dataUrl}/ba`, { headers: { authorization: basic('carol-t', 't2') } })).status).toBe(200);
    expect((await env.gw.admin('DELETE', '/apisix/admin/consumers/carol/credentials/tmp')).status).toBe(200);
    await env.route('ba', '/ba', { 'basic-auth': {} }); // waits for the delete to apply
    await expect401('/ba', { authorization: basic('carol-t', 't2') }, 'Invalid user authorization');
  });

  it('hide_credentials removes the Authorization header before the upstream', async () => {
    await env.route('ba-hide', '/ba-hide', { 'basic-auth': { hide_credentials: true } });
    expect((await send(`${env.gw.dataUrl}/ba-hide`, { headers: { authorization: 'Basic Zm9vOmJhcg==' } })).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers.authorization).toBeUndefined();
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('foo');
  });

  it('uses a custom realm in the challenge', async () => {
    await env.route('ba-realm', '/ba-realm', { 'basic-auth': { realm: 'my realm' } });
    await expect401('/ba-realm', {}, 'Missing authorization in request', 'Basic realm="my realm"');
  });

  it('falls back to the anonymous consumer, hiding the failed credential when asked', async () => {
    await env.put('/apisix/admin/consumers', { username: 'anon', plugins: {} });
    await env.route('ba-anon', '/ba-anon', { 'basic-auth': { anonymous_consumer: 'anon', hide_credentials: true } });
    expect((await send(`${env.gw.dataUrl}/ba-anon`)).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('anon');
    expect((await send(`${env.gw.dataUrl}/ba-anon`, { headers: { authorization: basic('foo', 'wrong') } })).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('anon');
    expect(env.up.seen.at(-1)!.headers.authorization).toBeUndefined();
    // Right credentials still win over the anonymous consumer.
    expect((await send(`${env.gw.dataUrl}/ba-anon`, { headers: { authorization: basic('foo', 'bar') } })).status).toBe(200);
    expect(env.up.seen.at(-1)!.headers['x-consumer-username']).toBe('foo');
  });

  it('answers 401 "Invalid user authorization" when the anonymous consumer does not exist', async () => {
    await env.route('ba-noanon', '/ba-noanon', { 'basic-auth': { anonymous_consumer: 'nobody', realm: 'r' } });
    await expect401('/ba-noanon', {}, 'Invalid user authorization', 'Basic realm="r"');
    expect(env.up.seen).toHaveLength(0);
  });
});

describe('basic-auth: header parsing (unit, APISIX edge cases)', () => {
  it('decodes base64 as ngx.decode_base64 does', () => {
    expect(decodeBase64Strict('Zm9vOmJhcg==')?.toString()).toBe('foo:bar');
    expect(decodeBase64Strict('Zm9vOmJhcg')?.toString()).toBe('foo:bar');
    expect(decodeBase64Strict('aca_a')).toBeUndefined();
    expect(decodeBase64Strict('Zm9vO')).toBeUndefined(); // length % 4 == 1
  });

  it('splits on every colon and keeps the first two fields, without whitespace', () => {
    const b64 = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    const p = parseBasic(b64(' fo o : b a r \n'))!;
    expect(p.username).toBe('foo');
    expect(p.password.toString()).toBe('bar');
    expect(parseBasic(b64('u:p:extra'))!.password.toString()).toBe('p');
    expect(parseBasic(b64('nocolon'))).toBeUndefined();
    expect(parseBasic('Bearer abc')).toBeUndefined();
  });
});
