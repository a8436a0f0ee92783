import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv({ apisix: { data_encryption: { enable_encrypt_fields: false } } });
  // A key-auth consumer for the ordering cases, where ip-restriction runs beside key-auth.
  await env.put('/apisix/admin/consumers', { username: 'jack', labels: { custom_id: 'c-77' }, plugins: { 'key-auth': { key: 'jack-key' } } });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

describe('ip-restriction', () => {
  it('blocks a blacklisted client with the default 403 message', async () => {
    await env.route('ip1', '/ip1', { 'ip-restriction': { blacklist: ['127.0.0.0/24'] } });
    const res = await send(`${env.gw.dataUrl}/ip1`, { headers: { 'x-forwarded-for': '10.9.9.9', 'x-real-ip': '10.9.9.9' } });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toEqual({ message: 'Your IP address is not allowed' });
    expect(env.up.seen).toHaveLength(0);
  });

  it('lets only whitelisted clients through, by socket address, with a custom code and message', async () => {
    await env.route('ip2', '/ip2', { 'ip-restriction': { whitelist: ['10.0.0.0/8', '::1'], response_code: 404, message: 'go away' } });
    // Spoofed forwarding headers must not help.
    const res = await send(`${env.gw.dataUrl}/ip2`, { headers: { 'x-forwarded-for': '10.1.1.1', 'x-real-ip': '10.1.1.1' } });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toEqual({ message: 'go away' });
    await env.route('ip3', '/ip3', { 'ip-restriction': { whitelist: ['127.0.0.1'] } });
    expect((await send(`${env.gw.dataUrl}/ip3`)).status).toBe(200);
  });

  it('rejects bad lists: both lists, neither, an invalid address, a code outside 403-404', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ whitelist: ['1.1.1.1'], blacklist: ['2.2.2.2'] }, /ip-restriction/],
      [{ message: 'x' }, /ip-restriction/],
      [{ whitelist: ['300.1.1.1'] }, /invalid ip address: 300\.1\.1\.1/],
      [{ blacklist: ['10.0.0.0/33'] }, /invalid ip address/],
      [{ whitelist: ['1.1.1.1'], response_code: 500 }, /response_code/],
    ];
    for (const [conf, msg] of bad) {
      const res = await env.gw.admin('PUT', '/apisix/admin/routes/ipbad', {
        uri: '/ipbad',
        plugins: { 'ip-restriction': conf },
        upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } },
      });
      expect(res.status, JSON.stringify(conf)).toBe(400);
      expect(res.body.error_msg).toMatch(msg);
    }
  });
});

describe('ordering by priority', () => {
  it('ip-restriction (3000) rejects before key-auth (2500) checks the key', async () => {
    await env.route('ord1', '/ord1', { 'key-auth': {}, 'ip-restriction': { blacklist: ['127.0.0.1', '::1', '::ffff:127.0.0.1'] } });
    // No key at all: key-auth runs in rewrite and answers 401 before ip-restriction's access phase, as in APISIX.
    expect((await send(`${env.gw.dataUrl}/ord1`)).status).toBe(401);
    // A valid key: key-auth passes, then ip-restriction blocks.
    expect((await send(`${env.gw.dataUrl}/ord1`, { headers: { apikey: 'jack-key' } })).status).toBe(403);
    expect(env.up.seen).toHaveLength(0);
  });

  it('a consumer can carry its own plugins, which override the route conf after authentication', async () => {
    await env.put('/apisix/admin/consumers', {
      username: 'blocked',
      plugins: { 'key-auth': { key: 'blocked-key' }, 'ip-restriction': { blacklist: ['127.0.0.1', '::1', '::ffff:127.0.0.1'], message: 'consumer says no' } },
    });
    await env.route('ord2', '/ord2', { 'key-auth': {} });
    expect((await send(`${env.gw.dataUrl}/ord2`, { headers: { apikey: 'jack-key' } })).status).toBe(200);
    const res = await send(`${env.gw.dataUrl}/ord2`, { headers: { apikey: 'blocked-key' } });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).message).toBe('consumer says no');
  });
});
