/**
 * fault-injection through real sockets: abort (status, body and headers with
 * variables), delay measured on the wire, both together, `percentage` over a
 * few hundred requests, `vars` choosing the requests, and schema refusals.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => {
  env.up.seen.length = 0;
});

const get = (path: string, headers?: Record<string, string>) => send(`${env.gw.dataUrl}${path}`, { headers });

async function timed(path: string, headers?: Record<string, string>): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const res = await get(path, headers);
  return { status: res.status, ms: performance.now() - t0 };
}

describe('fault-injection', () => {
  it('aborts with the status, a body and headers that take variables', async () => {
    await env.route('fi1', '/fi1', {
      'fault-injection': { abort: { http_status: 418, body: 'no tea for $arg_who\n', headers: { 'x-fault': 'for-$arg_who', 'x-n': 7 } } },
    });
    const res = await get('/fi1?who=jack');
    expect(res.status).toBe(418);
    expect(res.body).toBe('no tea for jack\n');
    expect(res.headers['x-fault']).toBe('for-jack');
    expect(res.headers['x-n']).toBe('7');
    expect(env.up.seen).toHaveLength(0);
  });

  it('delays by duration, then proxies', async () => {
    await env.route('fi2', '/fi2', { 'fault-injection': { delay: { duration: 0.6 } } });
    const r = await timed('/fi2');
    expect(r.status).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(590);
    expect(env.up.seen).toHaveLength(1);
  });

  it('delay then abort together', async () => {
    await env.route('fi3', '/fi3', { 'fault-injection': { delay: { duration: 0.4 }, abort: { http_status: 503, body: 'down' } } });
    const r = await timed('/fi3');
    expect(r.status).toBe(503);
    expect(r.ms).toBeGreaterThanOrEqual(390);
  });

  it('vars choose the requests: any expression of the list; an empty list never matches', async () => {
    await env.route('fi4', '/fi4', {
      'fault-injection': {
        abort: { http_status: 403, vars: [[['arg_name', '==', 'jack'], ['arg_age', '!', '<', 18]], [['http_x-chaos', '==', 'on']]] },
        delay: { duration: 1.5, vars: [[['http_x-slow', '==', 'yes']]] },
      },
    });
    expect((await get('/fi4?name=jack&age=20')).status).toBe(403);
    expect((await get('/fi4?name=jack&age=10')).status).toBe(200);
    expect((await get('/fi4', { 'x-chaos': 'on' })).status).toBe(403);
    const fast = await timed('/fi4');
    expect(fast.status).toBe(200);
    // Only the slow header is delayed: a request without it answers well before the 1.5 s delay.
    expect(fast.ms).toBeLessThan(1000);
    const slow = await timed('/fi4', { 'x-slow': 'yes' });
    expect(slow.ms).toBeGreaterThanOrEqual(1490);
    await env.route('fi5', '/fi5', { 'fault-injection': { abort: { http_status: 403, vars: [] } } });
    expect((await get('/fi5')).status).toBe(200);
  });

  it('percentage aborts about that share of requests; 0 none, 100 all', async () => {
    await env.route('fi6', '/fi6', { 'fault-injection': { abort: { http_status: 500, percentage: 50 } } });
    let aborted = 0;
    for (let i = 0; i < 300; i++) {
      const res = await fetch(`${env.gw.dataUrl}/fi6`);
      await res.arrayBuffer();
      if (res.status === 500) aborted++;
    }
    // Binomial(300, 0.5): 150 ± 8.7; ±45 is more than five standard deviations.
    expect(aborted).toBeGreaterThan(105);
    expect(aborted).toBeLessThan(195);
    await env.route('fi7', '/fi7', { 'fault-injection': { abort: { http_status: 500, percentage: 0 } } });
    for (let i = 0; i < 20; i++) expect((await get('/fi7')).status).toBe(200);
  });

  it('refuses bad confs', async () => {
    await expectRouteConfsRefused(env, 'fault-injection', [
      [{}, /fault-injection/],
      [{ abort: { http_status: 100 } }, /http_status/],
      [{ abort: {} }, /http_status/],
      [{ abort: { http_status: 500, percentage: 101 } }, /percentage/],
      [{ delay: { percentage: 10 } }, /duration/],
      [{ delay: { duration: -1 } }, /duration/],
      [{ abort: { http_status: 500, vars: [['arg_a', 'nope', 1]] } }, /fault-injection/],
      [{ abort: { http_status: 500, headers: { 'bad:name': 'x' } } }, /headers/],
      [{ abort: { http_status: 500, headers: { 'bad name': 'x' } } }, /invalid header name in abort.headers: "bad name"/],
    ]);
  });
});
