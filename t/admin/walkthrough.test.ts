/**
 * The curl walkthrough, sent the way curl -d sends it
 * (application/x-www-form-urlencoded), and APISIX's documented Kafka route
 * read back unchanged, with kafka-proxy's password encrypted at rest.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAdmin, type AdminHarness } from './harness.js';

const form = 'application/x-www-form-urlencoded';

describe('curl walkthrough', () => {
  let h: AdminHarness;
  beforeAll(async () => {
    h = await startAdmin();
  });
  afterAll(() => h.close());

  it('upstream, route, list, PATCH, refused DELETE, route DELETE', async () => {
    const up = await h.req('PUT', '/apisix/admin/upstreams/1', {
      body: '{"type":"roundrobin","nodes":{"127.0.0.1:1980":1}}',
      contentType: form,
    });
    expect(up.status).toBe(201);
    expect(up.body.value).toMatchObject({ id: '1', type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } });

    const route = await h.req('PUT', '/apisix/admin/routes/1', {
      body: '{"uri":"/hello","methods":["GET"],"upstream_id":"1"}',
      contentType: form,
    });
    expect(route.status).toBe(201);
    expect(route.body).toMatchObject({ key: '/apisix/routes/1', value: { uri: '/hello', upstream_id: '1', id: '1' } });

    const list = await h.req('GET', '/apisix/admin/routes');
    expect(list.status).toBe(200);
    expect(list.body.total).toBe(1);
    expect(list.body.list[0].value.uri).toBe('/hello');

    const patched = await h.req('PATCH', '/apisix/admin/routes/1', { body: '{"methods":["GET","POST"]}', contentType: form });
    expect(patched.status).toBe(200);
    expect(patched.body.value.methods).toEqual(['GET', 'POST']);

    const refused = await h.req('DELETE', '/apisix/admin/upstreams/1');
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error_msg: 'can not delete this upstream, route [1] is still using it now' });

    expect((await h.req('DELETE', '/apisix/admin/routes/1')).body).toEqual({ deleted: '1', key: '/apisix/routes/1' });
    expect((await h.req('DELETE', '/apisix/admin/upstreams/1')).status).toBe(200);
    expect((await h.req('GET', '/apisix/admin/routes')).body).toEqual({ list: [], total: 0 });
  });
});

const kafkaRoute = {
  uri: '/kafka',
  plugins: { 'kafka-proxy': { sasl: { username: 'user', password: 'pwd' } } },
  upstream: {
    nodes: { 'kafka-server1:9092': 1, 'kafka-server2:9092': 1, 'kafka-server3:9092': 1 },
    type: 'none',
    scheme: 'kafka',
    tls: { verify: true },
  },
};

describe('the APISIX docs Kafka route', () => {
  it('is accepted and read back unchanged (no defaults persisted)', async () => {
    const h = await startAdmin();
    try {
      const put = await h.req('PUT', '/apisix/admin/routes/kafka', { body: JSON.stringify(kafkaRoute), contentType: form });
      expect(put.status).toBe(201);
      const got = await h.req('GET', '/apisix/admin/routes/kafka');
      const { id, create_time, update_time, ...rest } = got.body.value;
      expect(id).toBe('kafka');
      expect(typeof create_time).toBe('number');
      expect(typeof update_time).toBe('number');
      expect(rest).toEqual(kafkaRoute);
    } finally {
      await h.close();
    }
  });

  it('stores sasl.password encrypted; admins read it decrypted, viewers see what is stored', async () => {
    const h = await startAdmin({ config: { apisix: { data_encryption: { enable_encrypt_fields: true, keyring: ['edd1c9f0985e76a2'] } } } });
    try {
      const put = await h.req('PUT', '/apisix/admin/routes/kafka', { body: kafkaRoute });
      expect(put.status).toBe(201);
      expect(put.body.value.plugins).toEqual(kafkaRoute.plugins);

      const raw = (await h.store.get('/apisix/routes/kafka'))!.value as typeof kafkaRoute;
      const storedPassword = raw.plugins['kafka-proxy'].sasl.password;
      expect(storedPassword).not.toBe('pwd');
      expect(raw.plugins['kafka-proxy'].sasl.username).toBe('user');

      const asAdmin = await h.req('GET', '/apisix/admin/routes/kafka');
      expect(asAdmin.body.value.plugins).toEqual(kafkaRoute.plugins);
      const asViewer = await h.req('GET', '/apisix/admin/routes/kafka', { key: h.viewerKey });
      expect(asViewer.body.value.plugins['kafka-proxy'].sasl.password).toBe(storedPassword);
      const listViewer = await h.req('GET', '/apisix/admin/routes', { key: h.viewerKey });
      expect(JSON.stringify(listViewer.body)).not.toContain('"pwd"');
      const listAdmin = await h.req('GET', '/apisix/admin/routes');
      expect(listAdmin.body.list[0].value.plugins['kafka-proxy'].sasl.password).toBe('pwd');

      // A PATCH elsewhere keeps the password intact (decrypted before merging, re-encrypted after).
      const patched = await h.req('PATCH', '/apisix/admin/routes/kafka', { body: { desc: 'k' } });
      expect(patched.status).toBe(200);
      expect(patched.body.value.plugins['kafka-proxy'].sasl.password).toBe('pwd');
      const rawAfter = (await h.store.get('/apisix/routes/kafka'))!.value as typeof kafkaRoute;
      expect(rawAfter.plugins['kafka-proxy'].sasl.password).not.toBe('pwd');
      expect((await h.req('GET', '/apisix/admin/routes/kafka')).body.value.plugins['kafka-proxy'].sasl.password).toBe('pwd');
    } finally {
      await h.close();
    }
  });

  it('is refused without the sasl password, naming the field', async () => {
    const h = await startAdmin();
    try {
      const bad = structuredClone(kafkaRoute) as { plugins: { 'kafka-proxy': { sasl: Record<string, string> } } };
      delete bad.plugins['kafka-proxy'].sasl.password;
      const res = await h.req('PUT', '/apisix/admin/routes/kafka', { body: bad });
      expect(res.status).toBe(400);
      expect(res.body.error_msg).toBe(
        'failed to check the configuration of plugin kafka-proxy err: property "sasl" validation failed: property "password" is required',
      );
    } finally {
      await h.close();
    }
  });
});
