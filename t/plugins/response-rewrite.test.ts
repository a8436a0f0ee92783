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
