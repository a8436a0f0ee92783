/**
 * api-breaker through real sockets: closed (failures counted, upstream
 * called), open (break_response_* without calling the upstream), half-open
 * after the break time, the break doubling on the next trip up to
 * max_breaker_sec, and closed again after healthy.successes; per host+path
 * state, and schema refusals.
 */
import { setTimeout as sleep } from 'node:timers/promises';
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
  env.up.replies.clear();
});

const get = (path: string) => send(`${env.gw.dataUrl}${path}`);

/** Sleeps until `ms` after `since`. */
const until = (since: number, ms: number) => sleep(Math.max(0, since + ms - Date.now()));

describe('api-breaker', () => {
  it('opens, half-opens after 2 s, doubles the next break (capped at max_breaker_sec), closes after healthy successes', async () => {
    await env.route('ab1', '/ab1', {
      'api-breaker': {
        break_response_code: 599,
        break_response_body: 'breaker open for $uri', // sent as written: APISIX resolves variables in the headers only
        break_response_headers: [{ key: 'x-breaker', value: 'open $host' }],
        max_breaker_sec: 4,
        unhealthy: { http_statuses: [500, 503], failures: 1 },
        healthy: { http_statuses: [200], successes: 2 },
      },
    });
    env.up.replies.set('/ab1', { status: 503 });
    // Closed: the upstream answers, and its 503 trips the breaker (failures: 1).
    expect((await get('/ab1')).status).toBe(503);
    const trip1 = Date.now();
    // Open: answered by the breaker, the upstream is not called.
    const open = await get('/ab1');
    expect(open.status).toBe(599);
    expect(open.body).toBe('breaker open for $uri');
    expect(open.headers['x-breaker']).toBe('open 127.0.0.1');
    expect(env.up.seen).toHaveLength(1);
    // Half-open after 2^1 s: the request reaches the upstream; its failure trips the breaker again.
    await until(trip1, 2300);
    expect((await get('/ab1')).status).toBe(503);
    const trip2 = Date.now();
    expect(env.up.seen).toHaveLength(2);
    // The second break lasts 2^2 = 4 s (= max_breaker_sec): still open after 3 s.
    await until(trip2, 3000);
    expect((await get('/ab1')).status).toBe(599);
    expect(env.up.seen).toHaveLength(2);
    await until(trip2, 4300);
    // The upstream recovered: two healthy answers close the breaker and forget the count.
    env.up.replies.set('/ab1', { status: 200 });
    expect((await get('/ab1')).status).toBe(200);
    expect((await get('/ab1')).status).toBe(200);
    env.up.replies.set('/ab1', { status: 500 });
    expect((await get('/ab1')).status).toBe(500);
    const trip3 = Date.now();
    expect((await get('/ab1')).status).toBe(599);
    // Counting started again from one failure: a 2 s break, not another 4 s.
    await until(trip3, 2300);
    env.up.replies.set('/ab1', { status: 200 });
    expect((await get('/ab1')).status).toBe(200);
  }, 30_000);

  it('trips on every failures-th unhealthy status only; other statuses and other paths are left alone', async () => {
    await env.route('ab2', '/ab2/*', { 'api-breaker': { break_response_code: 502, unhealthy: { failures: 3 } } });
    env.up.replies.set('/ab2/a', { status: 500 });
    env.up.replies.set('/ab2/b', { status: 404 });
    expect((await get('/ab2/a')).status).toBe(500);
    expect((await get('/ab2/a')).status).toBe(500);
    // A 404 is neither healthy nor unhealthy by default.
    for (let i = 0; i < 4; i++) expect((await get('/ab2/b')).status).toBe(404);
    expect((await get('/ab2/a')).status).toBe(500);
    const res = await get('/ab2/a');
    // Without break_response_body: the bare code.
    expect(res.status).toBe(502);
    expect(env.up.seen.filter((s) => s.url === '/ab2/a')).toHaveLength(3);
    // Another path on the same route has its own breaker.
    env.up.replies.set('/ab2/c', { status: 200 });
    expect((await get('/ab2/c')).status).toBe(200);
  });

  it('refuses bad confs', async () => {
    await expectRouteConfsRefused(env, 'api-breaker', [
      [{}, /break_response_code/],
      [{ break_response_code: 600 }, /break_response_code/],
      [{ break_response_code: 502, max_breaker_sec: 2 }, /max_breaker_sec/],
      [{ break_response_code: 502, unhealthy: { http_statuses: [404] } }, /http_statuses/],
      [{ break_response_code: 502, healthy: { http_statuses: [500] } }, /http_statuses/],
      [{ break_response_code: 502, unhealthy: { failures: 0 } }, /failures/],
      [{ break_response_code: 502, break_response_headers: [{ key: 'a' }] }, /value/],
    ]);
  });
});
