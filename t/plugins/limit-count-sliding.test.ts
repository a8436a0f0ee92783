/**
 * limit-count's window_type sliding, locally and in Redis: windows aligned on
 * the epoch (2 s here), the previous window's count weighed in by how much of
 * it still overlaps the last 2 s. The test times its requests against the
 * same clock the gateway reads (this process's), at points in the window
 * where the fixed window would answer differently.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startEnv, type Env } from './helpers.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const WINDOW_MS = 2_000;
let env: Env;
let redis: RedisServer;
beforeAll(async () => {
  [env, redis] = await Promise.all([startEnv(), startRedis()]);
});
afterAll(async () => {
  await Promise.all([env?.close(), redis?.stop()]);
});

/** Waits until `at` ms into the next window (aligned on the epoch, as the gateway aligns them). */
async function nextWindowAt(at: number): Promise<void> {
  await new Promise((r) => setTimeout(r, WINDOW_MS - (Date.now() % WINDOW_MS) + at));
}

/** Waits until `at` ms into the current window. */
async function thisWindowAt(at: number): Promise<void> {
  const wait = at - (Date.now() % WINDOW_MS);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

async function statuses(path: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await send(`${env.gw.dataUrl}${path}`)).status);
  return out;
}

describe.each([
  ['local', () => ({})],
  ['redis', () => ({ policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port })],
])('limit-count window_type sliding, policy %s', (policy, extra) => {
  it('the previous window weighs in by its overlap with the last time_window', async () => {
    const path = `/sliding-${policy}`;
    await env.route(`sliding-${policy}`, path, { 'limit-count': { count: 4, time_window: WINDOW_MS / 1000, window_type: 'sliding', rejected_code: 429, ...extra() } });
    await nextWindowAt(50);
    expect(await statuses(path, 5)).toEqual([200, 200, 200, 200, 429]);
    // 50 ms into the next window the last one's 4 still count as 3.9: one more fits, where a fixed window would take 4.
    await nextWindowAt(50);
    const first = await send(`${env.gw.dataUrl}${path}`);
    expect(first.status).toBe(200);
    expect(first.headers['x-ratelimit-remaining']).toBe('0');
    const refused = await send(`${env.gw.dataUrl}${path}`);
    expect(refused.status).toBe(429);
    // The refusal's reset is when 1 + the old window's share drops under 4, at 0.5 s into this window: ~0.4 s from now.
    expect(Number(refused.headers['x-ratelimit-reset'])).toBeGreaterThan(0.1);
    expect(Number(refused.headers['x-ratelimit-reset'])).toBeLessThanOrEqual(0.45);
    // At 1.1 s the old window counts as 1.8: with this window's 1, two more fit and a third does not (until 1.5 s).
    await thisWindowAt(1_100);
    expect(await statuses(path, 3)).toEqual([200, 200, 429]);
  });
});
