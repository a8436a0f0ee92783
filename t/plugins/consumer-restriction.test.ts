/**
 * consumer-restriction through real sockets, each restriction type:
 * consumer_name, consumer_group_id, service_id (on a consumer, merged after
 * authentication), route_id, and allowed_by_methods; the 401 when there is no
 * value; custom codes and messages; schema refusals.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
  await env.put('/apisix/admin/consumer_groups/gold', { plugins: {} });
  await env.put('/apisix/admin/consumers', { username: 'jack', group_id: 'gold', plugins: { 'key-auth': { key: 'jack-key' } } });
  await env.put('/apisix/admin/consumers', { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

const call = (path: string, key?: string, method = 'GET') => send(`${env.gw.dataUrl}${path}`, { method, headers: key ? { apikey: key } : {} });
const upstream = () => ({ type: 'roundrobin', nodes: { [env.up.node]: 1 } });

describe('consumer-restriction', () => {
  it('consumer_name whitelist: the listed consumer passes, another gets 403 with APISIX message', async () => {
    await env.route('cr1', '/cr1', { 'key-auth': {}, 'consumer-restriction': { whitelist: ['jack'] } });
    expect((await call('/cr1', 'jack-key')).status).toBe(200);
    const res = await call('/cr1', 'rose-key');
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toEqual({ message: 'The consumer_name is forbidden.' });
    expect(env.up.seen).toHaveLength(1);
  });

  it('consumer_name blacklist with rejected_code and rejected_msg', async () => {
    await env.route('cr2', '/cr2', { 'key-auth': {}, 'consumer-restriction': { blacklist: ['rose'], rejected_code: 451, rejected_msg: 'not you' } });
    expect((await call('/cr2', 'jack-key')).status).toBe(200);
    const res = await call('/cr2', 'rose-key');
    expect(res.status).toBe(451);
    expect(JSON.parse(res.body)).toEqual({ message: 'not you' });
  });

  it('no consumer at all: 401 naming the type', async () => {
    await env.route('cr3', '/cr3', { 'consumer-restriction': { whitelist: ['jack'] } });
    const res = await call('/cr3');
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body)).toEqual({ message: 'The request is rejected, please check the consumer_name for this request' });
  });

  it('consumer_group_id: a member of the group passes, a consumer without one gets 401', async () => {
    await env.route('cr4', '/cr4', { 'key-auth': {}, 'consumer-restriction': { type: 'consumer_group_id', whitelist: ['gold'] } });
    expect((await call('/cr4', 'jack-key')).status).toBe(200);
    const res = await call('/cr4', 'rose-key');
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).message).toBe('The request is rejected, please check the consumer_group_id for this request');
    await env.route('cr4b', '/cr4b', { 'key-auth': {}, 'consumer-restriction': { type: 'consumer_group_id', blacklist: ['gold'] } });
    expect((await call('/cr4b', 'jack-key')).status).toBe(403);
  });

  it('service_id on a consumer: it may use the services it lists only', async () => {
    await env.put('/apisix/admin/services/cr-s1', { upstream: upstream() });
    await env.put('/apisix/admin/services/cr-s2', { upstream: upstream() });
    await env.put('/apisix/admin/consumers', {
      username: 'svcuser',
      plugins: { 'key-auth': { key: 'svc-key' }, 'consumer-restriction': { type: 'service_id', whitelist: ['cr-s1'] } },
    });
    await env.put('/apisix/admin/routes/cr5', { uri: '/cr5', service_id: 'cr-s1', plugins: { 'key-auth': {} } });
    await env.put('/apisix/admin/routes/cr6', { uri: '/cr6', service_id: 'cr-s2', plugins: { 'key-auth': {} } });
    expect((await call('/cr5', 'svc-key')).status).toBe(200);
    const res = await call('/cr6', 'svc-key');
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toEqual({ message: 'The service_id is forbidden.' });
    // Other consumers carry no such restriction.
    expect((await call('/cr6', 'rose-key')).status).toBe(200);
  });

  it('route_id: a service-wide conf that blocks one of its routes', async () => {
    await env.put('/apisix/admin/services/cr-s3', { upstream: upstream(), plugins: { 'consumer-restriction': { type: 'route_id', blacklist: ['cr8'] } } });
    await env.put('/apisix/admin/routes/cr7', { uri: '/cr7', service_id: 'cr-s3' });
    await env.put('/apisix/admin/routes/cr8', { uri: '/cr8', service_id: 'cr-s3' });
    expect((await call('/cr7')).status).toBe(200);
    const res = await call('/cr8');
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toEqual({ message: 'The route_id is forbidden.' });
  });

  it('allowed_by_methods limits the methods of the users it names; a whitelisted user skips it', async () => {
    await env.route(
      'cr9',
      '/cr9',
      { 'key-auth': {}, 'consumer-restriction': { allowed_by_methods: [{ user: 'jack', methods: ['GET', 'HEAD'] }] } },
      { methods: ['GET', 'POST'] },
    );
    expect((await call('/cr9', 'jack-key')).status).toBe(200);
    expect((await call('/cr9', 'jack-key', 'POST')).status).toBe(403);
    expect((await call('/cr9', 'rose-key', 'POST')).status).toBe(200);
    await env.route(
      'cr10',
      '/cr10',
      { 'key-auth': {}, 'consumer-restriction': { whitelist: ['jack'], allowed_by_methods: [{ user: 'jack', methods: ['GET'] }] } },
      { methods: ['GET', 'POST'] },
    );
    expect((await call('/cr10', 'jack-key', 'POST')).status).toBe(200);
  });

  it('refuses bad confs', async () => {
    await expectRouteConfsRefused(env, 'consumer-restriction', [
      [{}, /consumer-restriction/],
      [{ type: 'host', whitelist: ['a'] }, /type/],
      [{ whitelist: [] }, /whitelist/],
      [{ allowed_by_methods: [{ user: 'a', methods: ['FETCH'] }] }, /methods/],
      [{ whitelist: ['a'], rejected_code: 199 }, /rejected_code/],
    ]);
  });
});
