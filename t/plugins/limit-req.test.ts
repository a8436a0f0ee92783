/**
 * limit-req with the local policy: the leaky bucket measured on the wire.
 * Delays are asserted as lower bounds with generous upper bounds (the machine
 * is shared); the order of admission and the count of rejections are exact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env, type RawResponse } from './helpers.js';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(async () => {
  await env?.close();
});

/** Sends `n` requests at once; resolves with each reply and the ms it took, in sending order. */
async function burst(path: string, n: number, headers: Record<string, string> = {}): Promise<Array<RawResponse & { ms: number }>> {
  const started = performance.now();
  return Promise.all(
    Array.from({ length: n }, () => send(`${env.gw.dataUrl}${path}`, { headers }).then((r) => ({ ...r, ms: performance.now() - started }))),
  );
}

describe('limit-req (local)', () => {
  it('is listed with its priority and schema', async () => {
    const list = await env.gw.admin('GET', '/apisix/admin/plugins/list');
    expect(list.body).toContain('limit-req');
    const all = await env.gw.admin('GET', '/apisix/admin/plugins?all=true');
    expect(all.body['limit-req'].priority).toBe(1001);
    const one = await env.gw.admin('GET', '/apisix/admin/plugins/limit-req');
    expect(one.body.required).toEqual(['rate', 'burst', 'key']);
  });

  it('delays the burst by excess / rate, and rejects beyond it (nodelay false)', async () => {
    // rate 2/s, burst 2: the first passes at once, the next two wait 0.5 s and 1 s, the rest are refused at once.
    // However late the requests arrive, the k-th admitted one cannot be answered before k / rate seconds.
    await env.route('lr1', '/lr1', { 'limit-req': { rate: 2, burst: 2, key: 'remote_addr' } });
    const replies = await burst('/lr1', 6);
    const passed = replies.filter((r) => r.status === 200).sort((a, b) => a.ms - b.ms);
    const refused = replies.filter((r) => r.status === 503);
    expect(passed).toHaveLength(3);
    expect(refused).toHaveLength(3);
    expect(passed[1]!.ms).toBeGreaterThanOrEqual(495);
    expect(passed[2]!.ms).toBeGreaterThanOrEqual(995);
    expect(passed[2]!.ms).toBeLessThan(3_000);
    // Neither the first admitted request nor a refusal waits.
    expect(passed[0]!.ms).toBeLessThan(passed[2]!.ms - 500);
    for (const r of refused) expect(r.ms).toBeLessThan(passed[2]!.ms - 500);
  });

  it('nodelay passes the burst at once; rejected_code and rejected_msg', async () => {
    await env.route('lr2', '/lr2', { 'limit-req': { rate: 1, burst: 2, key: 'remote_addr', nodelay: true, rejected_code: 429, rejected_msg: 'slow down' } });
    const replies = await burst('/lr2', 5);
    const passed = replies.filter((r) => r.status === 200);
    const refused = replies.filter((r) => r.status === 429);
    expect(passed).toHaveLength(3);
    expect(refused).toHaveLength(2);
    for (const r of passed) expect(r.ms).toBeLessThan(500);
    expect(JSON.parse(refused[0]!.body)).toEqual({ error_msg: 'slow down' });
  });

  it('leaks at rate: after 1/rate seconds one more request passes', async () => {
    await env.route('lr3', '/lr3', { 'limit-req': { rate: 2, burst: 0, key: 'remote_addr', rejected_code: 429 } });
    expect((await send(`${env.gw.dataUrl}/lr3`)).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lr3`)).status).toBe(429);
    await new Promise((r) => setTimeout(r, 550));
    expect((await send(`${env.gw.dataUrl}/lr3`)).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lr3`)).status).toBe(429);
  });

  it('a steady stream above the rate is cut to the rate', async () => {
    // 10/s allowed, sent at ~25/s for 1.2 s with nodelay: about 12 pass (one at t=0, then one per 100 ms).
    await env.route('lr4', '/lr4', { 'limit-req': { rate: 10, burst: 0, key: 'remote_addr', nodelay: true, rejected_code: 429 } });
    const statuses: Promise<number>[] = [];
    const started = performance.now();
    while (performance.now() - started < 1_200) {
      statuses.push(send(`${env.gw.dataUrl}/lr4`).then((r) => r.status));
      await new Promise((r) => setTimeout(r, 40));
    }
    const all = await Promise.all(statuses);
    const ok = all.filter((s) => s === 200).length;
    expect(all.length).toBeGreaterThan(20);
    expect(ok).toBeGreaterThanOrEqual(9);
    expect(ok).toBeLessThanOrEqual(15);
    expect(all.filter((s) => s === 429).length).toBe(all.length - ok);
  });

  it('keys by a variable (fallback: the client address) and by var_combination', async () => {
    await env.route('lr5', '/lr5', { 'limit-req': { rate: 1, burst: 0, key: 'http_x_user', nodelay: true } });
    expect((await send(`${env.gw.dataUrl}/lr5`, { headers: { 'x-user': 'a' } })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lr5`, { headers: { 'x-user': 'b' } })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lr5`, { headers: { 'x-user': 'a' } })).status).toBe(503);
    expect((await send(`${env.gw.dataUrl}/lr5`)).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lr5`)).status).toBe(503);
    await env.route('lr6', '/lr6', { 'limit-req': { rate: 1, burst: 0, key: '$http_x_a-$arg_b', key_type: 'var_combination', nodelay: true } });
    expect((await send(`${env.gw.dataUrl}/lr6?b=1`, { headers: { 'x-a': 'p' } })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lr6?b=2`, { headers: { 'x-a': 'p' } })).status).toBe(200);
    expect((await send(`${env.gw.dataUrl}/lr6?b=1`, { headers: { 'x-a': 'p' } })).status).toBe(503);
  });

  it('refuses bad confs with APISIX messages', async () => {
    await expectRouteConfsRefused(env, 'limit-req', [
      [{ burst: 1, key: 'remote_addr' }, /property "rate" is required/],
      [{ rate: -1, burst: 1, key: 'remote_addr' }, /property "rate" validation failed: expected -1 to be greater than 0/],
      [{ rate: 1, burst: -1, key: 'remote_addr' }, /property "burst" validation failed: expected -1 to be at least 0/],
      [{ rate: 1, burst: 1 }, /property "key" is required/],
      [{ rate: 1, burst: 1, key: 'remote_addr', key_type: 'constant' }, /property "key_type" validation failed: matches none of the enum values/],
      [{ rate: 1, burst: 1, key: 'remote_addr', rejected_code: 600 }, /property "rejected_code" validation failed: expected 600 to be at most 599/],
      [{ rate: 1, burst: 1, key: 'remote_addr', rejected_msg: '' }, /property "rejected_msg" validation failed: string too short, expected at least 1, got 0/],
      [{ rate: 1, burst: 1, key: 'remote_addr', policy: 'redis' }, /err: then clause did not match$/],
      [{ rate: 1, burst: 1, key: 'remote_addr', policy: 'redis-cluster', redis_cluster_nodes: ['127.0.0.1:1'] }, /err: else clause did not match$/],
      // APISIX takes a Redis field with the local policy and ignores it; Portico names it.
      [{ rate: 1, burst: 1, key: 'remote_addr', redis_host: '127.0.0.1' }, /redis_host is only used with policy "redis", not "local"/],
    ]);
  });
});
