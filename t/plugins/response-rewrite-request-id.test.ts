import { gzipSync } from 'node:zlib';
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

describe('response-rewrite', () => {
  it('$upstream_addr, $balancer_ip and $balancer_port name the node that answered', async () => {
    await env.route('rr-up', '/rr-up', {
      'response-rewrite': { headers: { set: { 'X-Up': '$upstream_addr', 'X-Ip': '$balancer_ip', 'X-Port': '$balancer_port' } } },
    });
    const res = await send(`${env.gw.dataUrl}/rr-up`);
    expect(res.status).toBe(200);
    expect(res.headers['x-up']).toBe(`127.0.0.1:${env.up.port}`);
    expect(res.headers['x-ip']).toBe('127.0.0.1');
    expect(res.headers['x-port']).toBe(String(env.up.port));
  });

  it('replaces status, body and headers; the upstream length and validators are dropped', async () => {
    env.up.replies.set('/rr1', { status: 200, headers: { etag: '"abc"', 'x-drop': 'd', 'x-keep': 'k' }, body: 'a long upstream body that is not wanted' });
    await env.route('rr1', '/rr1', {
      'response-rewrite': {
        status_code: 201,
        body: '{"replaced":true}',
        headers: { set: { 'X-Route': '$route_id', 'Content-Type': 'application/json' }, add: ['X-Extra: one'], remove: ['X-Drop'] },
      },
    });
    const res = await send(`${env.gw.dataUrl}/rr1`);
    expect(res.status).toBe(201);
    expect(res.body).toBe('{"replaced":true}');
    expect(res.headers['x-route']).toBe('rr1');
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-extra']).toBe('one');
    expect(res.headers['x-drop']).toBeUndefined();
    expect(res.headers['x-keep']).toBe('k');
    expect(res.headers.etag).toBeUndefined();
    expect(res.headers['content-length'] === undefined || res.headers['content-length'] === '17').toBe(true);
  });

  it('decodes body_base64', async () => {
    await env.route('rr2', '/rr2', { 'response-rewrite': { body: Buffer.from('binary\u0000ok').toString('base64'), body_base64: true } });
    const res = await send(`${env.gw.dataUrl}/rr2`);
    expect(res.body).toBe('binary\u0000ok');
  });

  it('applies only when vars match the response', async () => {
    env.up.replies.set('/rr3/fail', { status: 500, body: 'stack trace with secrets' });
    await env.route('rr3', '/rr3/*', { 'response-rewrite': { vars: [['status', '==', 500]], status_code: 503, body: 'service unavailable\n' } });
    const ok = await send(`${env.gw.dataUrl}/rr3/ok`);
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('upstream ok');
    const failed = await send(`${env.gw.dataUrl}/rr3/fail`);
    expect(failed.status).toBe(503);
    expect(failed.body).toBe('service unavailable\n');
  });

  it('filters the upstream body with regexes, also when it arrives gzip-encoded', async () => {
    env.up.replies.set('/rr4/plain', { body: 'hello world, hello moon' });
    env.up.replies.set('/rr4/gz', { headers: { 'content-encoding': 'gzip' }, body: gzipSync('hello world, hello moon') });
    await env.route('rr4', '/rr4/*', {
      'response-rewrite': { filters: [{ regex: 'hello (\\w+)', replace: 'bye $1', scope: 'global' }, { regex: 'BYE', replace: 'ciao', options: 'i' }] },
    });
    const plain = await send(`${env.gw.dataUrl}/rr4/plain`);
    expect(plain.body).toBe('ciao world, bye moon');
    const gz = await send(`${env.gw.dataUrl}/rr4/gz`, { headers: { 'accept-encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBeUndefined();
    expect(gz.body).toBe('ciao world, bye moon');
  });

  it('rejects bad confs', async () => {
    const bad: Array<[unknown, RegExp]> = [
      [{ status_code: 99 }, /status_code/],
      [{ body: 'x', filters: [{ regex: 'a', replace: 'b' }] }, /response-rewrite/],
      [{ body: '!!!notbase64', body_base64: true }, /invalid base64 content/],
      [{ vars: [['status', 'bogus-op', 1]] }, /vars/],
      [{ filters: [{ regex: '(', replace: 'x' }] }, /regex "\(" validation failed/],
      [{ headers: { add: ['no-colon-here'] } }, /response-rewrite/],
    ];
    for (const [conf, msg] of bad) {
      const res = await env.gw.admin('PUT', '/apisix/admin/routes/rrbad', {
        uri: '/rrbad',
        plugins: { 'response-rewrite': conf },
        upstream: { type: 'roundrobin', nodes: { [env.up.node]: 1 } },
      });
      expect(res.status, JSON.stringify(conf)).toBe(400);
      expect(res.body.error_msg).toMatch(msg);
    }
  });
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
