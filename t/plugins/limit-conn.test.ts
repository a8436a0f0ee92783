/**
 * limit-conn with the local policy against an upstream that answers after a
 * pause, so requests overlap for real: concurrent limits, burst delays and
 * releases measured on the wire.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRouteConfsRefused, send, startEnv, type Env, type RawResponse } from './helpers.js';

let env: Env;
let slow: Server;
let slowUpstream: { type: string; nodes: Record<string, number> };
/** Requests the slow upstream is holding right now, and the most it ever held. */
const inFlight = { now: 0, max: 0 };

beforeAll(async () => {
  env = await startEnv();
  // Answers after ?ms= milliseconds (300 by default).
  slow = createServer((req, res) => {
    inFlight.now++;
    inFlight.max = Math.max(inFlight.max, inFlight.now);
    const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 300);
    setTimeout(() => {
      inFlight.now--;
      res.end('slow ok');
    }, ms);
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  slowUpstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${(slow.address() as AddressInfo).port}`]: 1 } };
});
afterAll(async () => {
  await env?.close();
  slow?.closeAllConnections();
  await new Promise((r) => slow?.close(r));
});

async function concurrent(path: string, n: number, headers: Record<string, string> = {}): Promise<Array<RawResponse & { ms: number }>> {
  const started = performance.now();
  return Promise.all(Array.from({ length: n }, () => send(`${env.gw.dataUrl}${path}`, { headers }).then((r) => ({ ...r, ms: performance.now() - started }))));
}

describe('limit-conn (local)', () => {
  it('is listed with its priority', async () => {
    const all = await env.gw.admin('GET', '/apisix/admin/plugins?all=true');
    expect(all.body['limit-conn'].priority).toBe(1003);
  });

  it('lets conn requests in flight and rejects the rest at once; releasing them frees the places', async () => {
    await env.route('lcn1', '/lcn1', { 'limit-conn': { conn: 2, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', rejected_code: 429 } }, { upstream: slowUpstream });
    inFlight.max = 0;
    const replies = await concurrent('/lcn1?ms=600', 6);
    expect(replies.filter((r) => r.status === 200)).toHaveLength(2);
    const refused = replies.filter((r) => r.status === 429);
    expect(refused).toHaveLength(4);
    // Refused without waiting for the upstream.
    for (const r of refused) expect(r.ms).toBeLessThan(Math.min(...replies.filter((x) => x.status === 200).map((x) => x.ms)));
    expect(inFlight.max).toBe(2);
    // Both places were released when their requests ended.
    const again = await concurrent('/lcn1?ms=10', 2);
    expect(again.map((r) => r.status)).toEqual([200, 200]);
  });

  it('delays the burst by default_conn_delay per conn ahead, and rejects beyond conn + burst', async () => {
    await env.route('lcn2', '/lcn2', { 'limit-conn': { conn: 1, burst: 2, default_conn_delay: 0.4, key: 'remote_addr', rejected_msg: 'too many' } }, { upstream: slowUpstream });
    const replies = await concurrent('/lcn2?ms=100', 4);
    const passed = replies.filter((r) => r.status === 200).sort((a, b) => a.ms - b.ms);
    const refused = replies.filter((r) => r.status === 503);
    expect(passed).toHaveLength(3);
    expect(refused).toHaveLength(1);
    expect(JSON.parse(refused[0]!.body)).toEqual({ error_msg: 'too many' });
    // The second in waits 0.4 s, the third 0.8 s, each before its 0.1 s at the upstream.
    expect(passed[1]!.ms).toBeGreaterThanOrEqual(495);
    expect(passed[2]!.ms).toBeGreaterThanOrEqual(895);
    expect(passed[0]!.ms).toBeLessThan(passed[2]!.ms - 400);
  });

  it('counts per key', async () => {
    await env.route('lcn3', '/lcn3', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'http_x_user' } }, { upstream: slowUpstream });
    const [a1, a2, b1] = await Promise.all([
      send(`${env.gw.dataUrl}/lcn3?ms=400`, { headers: { 'x-user': 'a' } }),
      new Promise((r) => setTimeout(r, 100)).then(() => send(`${env.gw.dataUrl}/lcn3?ms=10`, { headers: { 'x-user': 'a' } })),
      new Promise((r) => setTimeout(r, 100)).then(() => send(`${env.gw.dataUrl}/lcn3?ms=10`, { headers: { 'x-user': 'b' } })),
    ]);
    expect([a1.status, a2.status, b1.status]).toEqual([200, 503, 200]);
  });

  it('a client that leaves early releases its place', async () => {
    await env.route('lcn4', '/lcn4', { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } }, { upstream: slowUpstream });
    const ac = new AbortController();
    const gone = fetch(`${env.gw.dataUrl}/lcn4?ms=5000`, { signal: ac.signal }).catch(() => 'aborted');
    await new Promise((r) => setTimeout(r, 200));
    expect((await send(`${env.gw.dataUrl}/lcn4?ms=10`)).status).toBe(503);
    ac.abort();
    expect(await gone).toBe('aborted');
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = (await send(`${env.gw.dataUrl}/lcn4?ms=10`)).status;
    }
    expect(status).toBe(200);
  });

  it('conn from a variable; one that is not a positive integer answers 500, or passes with allow_degradation', async () => {
    await env.route('lcn5', '/lcn5', { 'limit-conn': { conn: '$http_x_conn', burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } }, { upstream: slowUpstream });
    const two = await concurrent('/lcn5?ms=300', 3, { 'x-conn': '2' });
    expect(two.map((r) => r.status).sort()).toEqual([200, 200, 503]);
    expect((await send(`${env.gw.dataUrl}/lcn5?ms=1`, { headers: { 'x-conn': 'zero' } })).status).toBe(500);
    expect((await send(`${env.gw.dataUrl}/lcn5?ms=1`)).status).toBe(500);
    await env.route('lcn6', '/lcn6', { 'limit-conn': { conn: '$http_x_conn', burst: 0, default_conn_delay: 0.1, key: 'remote_addr', allow_degradation: true } }, { upstream: slowUpstream });
    expect((await send(`${env.gw.dataUrl}/lcn6?ms=1`, { headers: { 'x-conn': '0' } })).status).toBe(200);
  });

  it('refuses bad confs with APISIX messages', async () => {
    const base = { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' };
    await expectRouteConfsRefused(env, 'limit-conn', [
      [{ conn: 1, burst: 0, key: 'remote_addr' }, /default_conn_delay/],
      [{ ...base, conn: 0 }, /property "conn" validation failed: value should match only one schema, but matches none/],
      [{ ...base, burst: -1 }, /property "burst" validation failed: value should match only one schema, but matches none/],
      [{ ...base, default_conn_delay: 0 }, /property "default_conn_delay" validation failed: expected 0 to be greater than 0/],
      [{ ...base, allow_degradation: 'yes' }, /property "allow_degradation" validation failed: wrong type: expected boolean, got string/],
      [{ ...base, rejected_msg: '' }, /property "rejected_msg" validation failed: string too short, expected at least 1, got 0/],
      [{ ...base, policy: 'redis' }, /err: then clause did not match$/],
      [{ ...base, policy: 'redis-cluster', redis_cluster_nodes: ['127.0.0.1:1'] }, /err: else clause did not match$/],
      [{ ...base, key_ttl: 60 }, /key_ttl is only used with policy "redis" or "redis-cluster", not "local"/],
      [{ default_conn_delay: 0.1, rules: [{ conn: 1, burst: 0, key: '$remote_addr' }] }, /rules is not supported yet/],
    ]);
  });
});
