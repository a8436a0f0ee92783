/**
 * Consumer credentials (/apisix/admin/consumers/<username>/credentials/<id>),
 * APISIX's t/admin/credentials.t cases through the Admin API, then what the data
 * plane does with them: key-auth finds the consumer by a credential's key, the
 * upstream learns the consumer and the credential id, the consumer's own
 * plugins still apply, and removing a credential or its consumer revokes it live.
 */
import { describe, expect, it } from 'vitest';
import { useGatewayWithEcho } from '../helpers/gateway.js';
import { send } from '../dataplane/helpers.js';

describe('Admin API: consumer credentials', () => {
  const env = useGatewayWithEcho();

  const cred = (user: string, id = '') => `/apisix/admin/consumers/${user}/credentials${id ? `/${id}` : ''}`;

  /** Polls until `check` passes on the data plane's answer (config applies asynchronously). */
  async function until(headers: Record<string, string>, check: (r: Awaited<ReturnType<typeof send>>) => boolean) {
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await send(env.gw.dataPort, { path: '/cred', headers });
      if (check(r) || Date.now() > deadline) return r;
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  it('a credential needs its consumer: 404 consumer not found, and nothing is stored', async () => {
    const r = await env.gw.admin('PUT', cred('jack', 'credential_a'), { plugins: { 'key-auth': { key: 'k-jack-a' } } });
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ error_msg: 'consumer not found' });
    expect((await env.gw.admin('GET', cred('jack', 'credential_a'))).status).toBe(404);
  });

  it('PUT, GET, list, update and DELETE, with the stored key encrypted and the consumers list left without credentials', async () => {
    expect((await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'jack' })).status).toBe(201);
    const a = await env.gw.admin('PUT', cred('jack', 'credential_a'), { desc: 'key-auth for jack', plugins: { 'key-auth': { key: 'k-jack-a' } } });
    expect(a.status).toBe(201);
    expect(a.body.key).toBe('/apisix/consumers/jack/credentials/credential_a');
    expect(a.body.value.id).toBe('credential_a');
    expect(a.body.value.desc).toBe('key-auth for jack');
    expect(typeof a.body.value.create_time).toBe('number');

    // id in the body instead of the URL.
    const b = await env.gw.admin('PUT', cred('jack'), { id: 'credential_b', plugins: { 'key-auth': { key: 'k-jack-b' } } });
    expect(b.status).toBe(201);
    expect(b.body.key).toBe('/apisix/consumers/jack/credentials/credential_b');

    const one = await env.gw.admin('GET', cred('jack', 'credential_b'));
    expect(one.status).toBe(200);
    expect(one.body.value.plugins['key-auth'].key).toBe('k-jack-b'); // decrypted for an admin key
    // Encrypted at rest (data_encryption is on by default), as a consumer's own key-auth key: a viewer sees what is stored.
    const asViewer = await env.gw.admin('GET', cred('jack', 'credential_b'), undefined, env.gw.viewerKey);
    expect(asViewer.body.value.plugins['key-auth'].key).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(asViewer.body.value.plugins['key-auth'].key).not.toBe('k-jack-b');

    const list = await env.gw.admin('GET', cred('jack'));
    expect(list.status).toBe(200);
    expect(list.body.total).toBe(2);
    expect(list.body.list.map((i: { key: string }) => i.key).sort()).toEqual([
      '/apisix/consumers/jack/credentials/credential_a',
      '/apisix/consumers/jack/credentials/credential_b',
    ]);
    const consumers = await env.gw.admin('GET', '/apisix/admin/consumers');
    expect(consumers.body.total).toBe(1);
    expect(consumers.body.list.map((i: { key: string }) => i.key)).toEqual(['/apisix/consumers/jack']);

    const upd = await env.gw.admin('PUT', cred('jack', 'credential_b'), { desc: 'rotated', plugins: { 'key-auth': { key: 'k-jack-b2' } } });
    expect(upd.status).toBe(200);
    expect(upd.body.value.create_time).toBe(b.body.value.create_time);

    const del = await env.gw.admin('DELETE', cred('jack', 'credential_a'));
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ deleted: '1', key: '/apisix/consumers/jack/credentials/credential_a' });
    expect((await env.gw.admin('GET', cred('jack'))).body.total).toBe(1);
    expect((await env.gw.admin('DELETE', cred('jack', 'credential_a'))).status).toBe(404);
  });

  it('refuses what APISIX refuses, naming the problem, and stores nothing', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ plugins: { 'proxy-rewrite': { uri: '/x' } } }, 400, 'only supports auth type plugins in consumer credential'],
      [
        { plugins: { 'key-auth': { key: 'a' }, 'proxy-rewrite': { uri: '/x' } } },
        400,
        'invalid configuration: property "plugins" validation failed: expect object to have at most 1 properties',
      ],
      [{ plugins: { 'key-auth': {} } }, 400, 'invalid plugins configuration: failed to check the configuration of plugin key-auth err: property "key" is required'],
      [{ plugins: { 'no-such-plugin': {} } }, 400, ''],
      [{ username: 'jack', plugins: {} }, 400, 'invalid configuration: additional properties forbidden, found username'],
      [{ create_time: 1, plugins: {} }, 400, 'the property is forbidden:  create_time'],
    ];
    for (const [body, status, msg] of cases) {
      const r = await env.gw.admin('PUT', cred('jack', 'bad-one'), body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      if (msg) expect(r.body.error_msg, JSON.stringify(body)).toBe(msg);
      else expect(r.body.error_msg).toMatch(/no-such-plugin/);
    }
    expect((await env.gw.admin('GET', cred('jack', 'bad-one'))).status).toBe(404);
    expect((await env.gw.admin('PUT', cred('jack'), { plugins: { 'key-auth': { key: 'z' } } })).body).toEqual({ error_msg: 'missing credential id' });
    expect((await env.gw.admin('PUT', cred('jack', 'x1'), { id: 'x2', plugins: {} })).body).toEqual({ error_msg: 'wrong credential id' });
    for (const method of ['POST', 'PATCH']) {
      const r = await env.gw.admin(method, cred('jack', 'credential_b'), { plugins: {} });
      expect(r.status).toBe(405);
      expect(r.body).toEqual({ error_msg: `not supported \`${method}\` method for credential` });
    }
    // A viewer key reads but does not write.
    expect((await env.gw.admin('PUT', cred('jack', 'v1'), { plugins: { 'key-auth': { key: 'v' } } }, env.gw.viewerKey)).status).toBe(401);
  });

  it('duplicate keys across consumers and credentials, with APISIX messages', async () => {
    await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'alex' });
    await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'bob', plugins: { 'key-auth': { key: 'bob-key' } } });
    expect((await env.gw.admin('PUT', cred('alex', 'cred-alex-a'), { plugins: { 'key-auth': { key: 'alex-a' } } })).status).toBe(201);
    const msgs: Array<[string, unknown, string]> = [
      [cred('bob', 'cred-bob-a'), { plugins: { 'key-auth': { key: 'alex-a' } } }, 'duplicate key of plugin key-auth found with credential: cred-alex-a of consumer: alex'],
      [cred('alex', 'cred-alex-b'), { plugins: { 'key-auth': { key: 'bob-key' } } }, 'duplicate key of plugin key-auth found with consumer: bob'],
      ['/apisix/admin/consumers', { username: 'bob', plugins: { 'key-auth': { key: 'alex-a' } } }, 'duplicate key of plugin key-auth found with credential: cred-alex-a of consumer: alex'],
      [cred('alex', 'cred-alex-c'), { plugins: { 'key-auth': { key: 'alex-a' } } }, 'duplicate key of plugin key-auth found with credential: cred-alex-a of consumer: alex'],
      // A credential may not repeat its own consumer's key either.
      [cred('bob', 'cred-bob-b'), { plugins: { 'key-auth': { key: 'bob-key' } } }, 'duplicate key of plugin key-auth found with consumer: bob'],
    ];
    for (const [path, body, msg] of msgs) {
      const r = await env.gw.admin('PUT', path, body);
      expect(r.status, path).toBe(400);
      expect(r.body.error_msg, path).toBe(msg);
    }
    // Rewriting a credential with its own key is fine; so is a consumer taking a key one of its own credentials holds.
    expect((await env.gw.admin('PUT', cred('alex', 'cred-alex-a'), { plugins: { 'key-auth': { key: 'alex-a' } } })).status).toBe(200);
    expect((await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'alex', plugins: { 'key-auth': { key: 'alex-a' } } })).status).toBe(200);
  });

  it('key-auth identifies the consumer by a credential key; the upstream learns the consumer and the credential', async () => {
    await env.gw.admin('PUT', '/apisix/admin/consumers', {
      username: 'carol',
      labels: { custom_id: 'c-42' },
      // The consumer's own plugins still merge into the route for requests made with any of its credentials.
      plugins: { 'proxy-rewrite': { headers: { set: { 'x-from-consumer': 'carol' } } } },
    });
    await env.gw.admin('PUT', cred('carol', 'laptop'), { plugins: { 'key-auth': { key: 'carol-laptop' } } });
    await env.gw.admin('PUT', cred('carol', 'phone'), { plugins: { 'key-auth': { key: 'carol-phone' } } });
    await env.gw.admin('PUT', '/apisix/admin/routes/cred', { uri: '/cred', plugins: { 'key-auth': {} }, upstream: { nodes: { [`127.0.0.1:${env.up.port}`]: 1 } } });

    const viaPhone = await until({ apikey: 'carol-phone' }, (r) => r.status === 200);
    expect(viaPhone.status).toBe(200);
    const seen = JSON.parse(viaPhone.body) as { headers: Record<string, string> };
    expect(seen.headers['x-consumer-username']).toBe('carol');
    expect(seen.headers['x-credential-identifier']).toBe('phone');
    expect(seen.headers['x-consumer-custom-id']).toBe('c-42');
    expect(seen.headers['x-from-consumer']).toBe('carol');

    const viaLaptop = JSON.parse((await send(env.gw.dataPort, { path: '/cred', headers: { apikey: 'carol-laptop' } })).body) as { headers: Record<string, string> };
    expect(viaLaptop.headers['x-credential-identifier']).toBe('laptop');

    // A client cannot plant a credential id; and a wrong key is a 401.
    const planted = await send(env.gw.dataPort, { path: '/cred', headers: { apikey: 'nope', 'x-credential-identifier': 'phone' } });
    expect(planted.status).toBe(401);

    // Deleting one credential revokes only that key, live.
    await env.gw.admin('DELETE', cred('carol', 'phone'));
    expect((await until({ apikey: 'carol-phone' }, (r) => r.status === 401)).status).toBe(401);
    expect((await send(env.gw.dataPort, { path: '/cred', headers: { apikey: 'carol-laptop' } })).status).toBe(200);

    // Deleting the consumer deletes its credentials with it.
    expect((await env.gw.admin('DELETE', '/apisix/admin/consumers/carol')).status).toBe(200);
    expect((await until({ apikey: 'carol-laptop' }, (r) => r.status === 401)).status).toBe(401);
    expect((await env.gw.admin('GET', cred('carol'))).status).toBe(404);
    expect((await env.gw.admin('GET', cred('carol', 'laptop'))).status).toBe(404);
  });

  it('a consumer identified by its own key sends no credential id upstream, even one the client planted', async () => {
    await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'dave', plugins: { 'key-auth': { key: 'dave-own' } } });
    const r = await until({ apikey: 'dave-own', 'x-credential-identifier': 'forged' }, (x) => x.status === 200);
    expect(r.status).toBe(200);
    const seen = JSON.parse(r.body) as { headers: Record<string, string> };
    expect(seen.headers['x-consumer-username']).toBe('dave');
    expect(seen.headers['x-credential-identifier']).toBeUndefined();
  });
});
