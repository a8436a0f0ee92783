/**
 * Consumer groups (/apisix/admin/consumer_groups): the Admin API's rules as
 * APISIX's, and in the data plane the group's plugins merged for its consumers
 * after auth, with the precedence consumer > consumer group > route, applied
 * live when the group changes, and 503 when a consumer's group is gone.
 */
import { describe, expect, it } from 'vitest';
import { useGatewayWithEcho } from '../helpers/gateway.js';
import { send } from '../dataplane/helpers.js';

describe('consumer groups', () => {
  const env = useGatewayWithEcho();

  const headersSeen = (body: string) => (JSON.parse(body) as { headers: Record<string, string> }).headers;

  /** Polls the data plane until `check` passes (config applies asynchronously). */
  async function until(path: string, key: string, check: (r: Awaited<ReturnType<typeof send>>) => boolean) {
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await send(env.gw.dataPort, { path, headers: { apikey: key } });
      if (check(r) || Date.now() > deadline) return r;
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  it('CRUD with APISIX rules and messages', async () => {
    const put = await env.gw.admin('PUT', '/apisix/admin/consumer_groups/company_a', { desc: 'a', plugins: { 'request-id': {} } });
    expect(put.status).toBe(201);
    expect(put.body.key).toBe('/apisix/consumer_groups/company_a');
    expect(put.body.value.id).toBe('company_a');
    expect((await env.gw.admin('GET', '/apisix/admin/consumer_groups/company_a')).body.value.desc).toBe('a');
    expect((await env.gw.admin('GET', '/apisix/admin/consumer_groups')).body.total).toBe(1);
    const patched = await env.gw.admin('PATCH', '/apisix/admin/consumer_groups/company_a', { desc: 'b' });
    expect(patched.status).toBe(200);
    expect(patched.body.value.plugins).toEqual({ 'request-id': {} });

    const post = await env.gw.admin('POST', '/apisix/admin/consumer_groups', { plugins: {} });
    expect(post.status).toBe(405);
    expect(post.body).toEqual({ error_msg: 'not supported `POST` method for consumer group' });
    const noPlugins = await env.gw.admin('PUT', '/apisix/admin/consumer_groups/g2', { desc: 'x' });
    expect(noPlugins.body).toEqual({ error_msg: 'invalid configuration: property "plugins" is required' });
    const badPlugin = await env.gw.admin('PUT', '/apisix/admin/consumer_groups/g2', { plugins: { 'limit-count': { count: -1, time_window: 1 } } });
    expect(badPlugin.status).toBe(400);
    expect(badPlugin.body.error_msg).toMatch(/limit-count/);
    expect((await env.gw.admin('GET', '/apisix/admin/consumer_groups/g2')).status).toBe(404);

    const orphan = await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'orphan', group_id: 'nope' });
    expect(orphan.status).toBe(400);
    expect(orphan.body).toEqual({ error_msg: 'failed to fetch consumer group info by consumer group id [nope], response code: 404' });

    expect((await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'member', group_id: 'company_a' })).status).toBe(201);
    const refused = await env.gw.admin('DELETE', '/apisix/admin/consumer_groups/company_a');
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error_msg: 'can not delete this consumer group, consumer [member] is still using it now' });
    await env.gw.admin('DELETE', '/apisix/admin/consumers/member');
    expect((await env.gw.admin('DELETE', '/apisix/admin/consumer_groups/company_a')).status).toBe(200);
  });

  it("the group's plugins apply to its consumers after auth; the consumer's own conf wins; changes apply live", async () => {
    await env.gw.admin('PUT', '/apisix/admin/consumer_groups/gold', {
      plugins: {
        'limit-count': { count: 3, time_window: 60, rejected_code: 429 },
        'response-rewrite': { headers: { set: { 'x-tier': 'gold-from-group' } } },
        // Not on the route: added from the group, so it runs in the rewrite_in_consumer pass.
        'proxy-rewrite': { headers: { set: { 'x-group-only': 'yes' } } },
      },
    });
    await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'ann', group_id: 'gold', plugins: { 'key-auth': { key: 'ann-key' } } });
    await env.gw.admin('PUT', '/apisix/admin/consumers', {
      username: 'ben',
      group_id: 'gold',
      plugins: { 'key-auth': { key: 'ben-key' }, 'response-rewrite': { headers: { set: { 'x-tier': 'ben-own' } } } },
    });
    await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'cy', plugins: { 'key-auth': { key: 'cy-key' } } });
    await env.gw.admin('PUT', '/apisix/admin/routes/grp', {
      uri: '/grp',
      plugins: { 'key-auth': {}, 'response-rewrite': { headers: { set: { 'x-tier': 'route' } } } },
      upstream: { nodes: { [`127.0.0.1:${env.up.port}`]: 1 } },
    });

    // Precedence on a plugin the route has too (response-rewrite runs after the merge): consumer > group > route.
    const ann = await until('/grp', 'ann-key', (r) => r.status === 200);
    expect(ann.status).toBe(200);
    expect(ann.headers['x-tier']).toBe('gold-from-group');
    expect(headersSeen(ann.body)['x-group-only']).toBe('yes');
    expect(ann.headers['x-ratelimit-limit']).toBe('3');

    const ben = await send(env.gw.dataPort, { path: '/grp', headers: { apikey: 'ben-key' } });
    expect(ben.headers['x-tier']).toBe('ben-own');
    expect(headersSeen(ben.body)['x-group-only']).toBe('yes'); // the group's other plugins still apply to ben

    const cy = await send(env.gw.dataPort, { path: '/grp', headers: { apikey: 'cy-key' } });
    expect(cy.headers['x-tier']).toBe('route'); // not in the group
    expect(headersSeen(cy.body)['x-group-only']).toBeUndefined();
    expect(cy.headers['x-ratelimit-limit']).toBeUndefined();

    // The group's limit is one counter for its members (APISIX keys it by the group): ann 1, ben 2, ann 3, ann refused.
    const second = await send(env.gw.dataPort, { path: '/grp', headers: { apikey: 'ann-key' } });
    expect(second.status).toBe(200);
    const third = await send(env.gw.dataPort, { path: '/grp', headers: { apikey: 'ann-key' } });
    expect(third.status).toBe(429);

    // A PATCH of the group reaches its consumers without touching them.
    await env.gw.admin('PATCH', '/apisix/admin/consumer_groups/gold', { plugins: { 'limit-count': null, 'response-rewrite': { headers: { set: { 'x-tier': 'gold-2' } } } } });
    const after = await until('/grp', 'ann-key', (r) => r.status === 200 && r.headers['x-tier'] === 'gold-2');
    expect(after.status).toBe(200);
    expect(after.headers['x-tier']).toBe('gold-2');
    expect(after.headers['x-ratelimit-limit']).toBeUndefined();
  });

  it("a consumer whose group was force-deleted is answered 503, and other consumers are not", async () => {
    await env.gw.admin('PUT', '/apisix/admin/consumer_groups/temp', { plugins: { 'request-id': {} } });
    await env.gw.admin('PUT', '/apisix/admin/consumers', { username: 'tess', group_id: 'temp', plugins: { 'key-auth': { key: 'tess-key' } } });
    expect((await until('/grp', 'tess-key', (r) => r.status === 200)).status).toBe(200);
    expect((await env.gw.admin('DELETE', '/apisix/admin/consumer_groups/temp?force=true')).status).toBe(200);
    expect((await until('/grp', 'tess-key', (r) => r.status === 503)).status).toBe(503);
    expect((await send(env.gw.dataPort, { path: '/grp', headers: { apikey: 'cy-key' } })).status).toBe(200);
  });
});
