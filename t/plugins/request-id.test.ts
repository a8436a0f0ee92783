import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
  env.up.replies.clear();
});

describe('request-id', () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it('gives each request a fresh uuid, sent upstream and back to the client', async () => {
    await env.route('ri1', '/ri1', { 'request-id': {} });
    const a = await send(`${env.gw.dataUrl}/ri1`);
    const b = await send(`${env.gw.dataUrl}/ri1`);
    expect(a.headers['x-request-id']).toMatch(UUID);
    expect(b.headers['x-request-id']).toMatch(UUID);
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
    expect(env.up.seen[0]!.headers['x-request-id']).toBe(a.headers['x-request-id']);
  });

  it('keeps an incoming id', async () => {
    await env.route('ri2', '/ri2', { 'request-id': {} });
    const res = await send(`${env.gw.dataUrl}/ri2`, { headers: { 'x-request-id': 'from-client-1' } });
    expect(res.headers['x-request-id']).toBe('from-client-1');
    expect(env.up.seen[0]!.headers['x-request-id']).toBe('from-client-1');
  });

  it('supports a custom header, nanoid and range_id, and include_in_response: false', async () => {
    await env.route('ri3', '/ri3', { 'request-id': { header_name: 'X-Trace', algorithm: 'nanoid' } });
    expect((await send(`${env.gw.dataUrl}/ri3`)).headers['x-trace']).toMatch(/^[-_0-9a-zA-Z]{21}$/);
    await env.route('ri4', '/ri4', { 'request-id': { algorithm: 'range_id', range_id: { length: 8, char_set: 'abcdef' }, include_in_response: false } });
    const res = await send(`${env.gw.dataUrl}/ri4`);
    expect(res.headers['x-request-id']).toBeUndefined();
    expect(env.up.seen.at(-1)!.headers['x-request-id']).toMatch(/^[a-f]{8}$/);
  });

  it('puts the id on responses that a later plugin ended early', async () => {
    await env.route('ri5', '/ri5', { 'request-id': {}, 'key-auth': {} });
    const res = await send(`${env.gw.dataUrl}/ri5`);
    expect(res.status).toBe(401);
    expect(res.headers['x-request-id']).toMatch(UUID);
  });

  it('rejects an unknown algorithm and a short char_set', async () => {
    for (const conf of [{ algorithm: 'snowflake' }, { algorithm: 'range_id', range_id: { char_set: 'abc' } }]) {
      const res = await env.gw.admin('PUT', '/apisix/admin/routes/ribad', {
        uri: '/ribad',
        plugins: { 'request-id': conf },
        upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } },
      });
      expect(res.status, JSON.stringify(conf)).toBe(400);
      expect(res.body.error_msg).toMatch(/request-id/);
    }
  });
});
