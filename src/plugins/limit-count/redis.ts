/**
 * limit-count's counters in Redis (`policy: redis` and `redis-cluster`),
 * shared by every gateway node on it, with APISIX's scripts and key names
 * (apisix/plugins/limit-count/util.lua, sliding-window/store/redis.lua), so
 * each step is one atomic script on one key, which a cluster can run.
 */
import { evalScript, luaScript, withRedis, type RedisTarget } from '../lib/redis-client.js';
import { slidingVerdict, type Take, type TakeRequest } from './counters.js';

/** Fixed window: the first request sets the count with the window as its expiry. Returns {count, ttl ms}. */
const FIXED = luaScript(`
assert(tonumber(ARGV[3]) >= 0, "cost must be at least 0")
local ttl = redis.call('pttl', KEYS[1])
if ttl < 0 then
  redis.call('set', KEYS[1], ARGV[3], 'EX', ARGV[2])
  return {ARGV[3], ARGV[2] * 1000}
end
return {redis.call('incrby', KEYS[1], ARGV[3]), ttl}
`);

/**
 * Sliding window: decides and counts in one step on this window's key; the
 * previous window is over (never written again), so its count comes as an
 * argument. ARGV: cost, limit, window (s), time left (s), expiry (s), last.
 * Returns {accepted, count, last}.
 */
const SLIDING = luaScript(`
local cost = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window_size = tonumber(ARGV[3])
local remaining_time = tonumber(ARGV[4])
local expiry = ARGV[5]
local last = tonumber(ARGV[6])
if last > limit then
  last = limit
end
local cur_ttl = redis.call('pttl', KEYS[1])
local cur = 0
if cur_ttl >= 0 then
  cur = tonumber(redis.call('get', KEYS[1]) or 0)
end
local estimated = last / window_size * remaining_time + cur
if cur >= limit or estimated >= limit then
  return {0, cur, last}
end
local new
if cur_ttl < 0 then
  redis.call('set', KEYS[1], cost, 'EX', expiry)
  new = cost
else
  new = redis.call('incrby', KEYS[1], cost)
end
return {1, new, last}
`);

/** APISIX's counter-format version in fixed-window keys (limit-count/init.lua's KEY_VERSION). */
const KEY_PREFIX = 'plugin-limit-count:v1:';
const SLIDING_PREFIX = 'plugin-limit-count:';

async function takeFixed(target: RedisTarget, req: TakeRequest): Promise<Take> {
  const windowSec = req.windowMs / 1000;
  const now = Date.now();
  const [used, ttl] = (await withRedis(target, (r) => evalScript(r, FIXED, KEY_PREFIX + req.key, [req.count, windowSec, 1]))) as [number | string, number];
  const remaining = req.count - Number(used);
  return remaining < 0 ? { allowed: false, remaining: 0, resetAt: now + ttl } : { allowed: true, remaining, resetAt: now + ttl };
}

async function takeSliding(target: RedisTarget, req: TakeRequest): Promise<Take> {
  const now = Date.now();
  const id = Math.floor(now / req.windowMs);
  const left = req.windowMs - (now % req.windowMs);
  const key = (n: number): string => `${SLIDING_PREFIX}${req.key}.${n}.counter`;
  const windowSec = req.windowMs / 1000;
  const [accepted, cur, last] = (await withRedis(target, async (r) => {
    const prev = Number((await r.get(key(id - 1))) ?? 0);
    return evalScript(r, SLIDING, key(id), [1, req.count, windowSec, left / 1000, windowSec * 2, prev]);
  })) as [number, number, number];
  // The script counted this request when it accepted it; the verdict is recomputed from the counts before it.
  const v = slidingVerdict(accepted === 1 ? cur - 1 : cur, last, req.count, req.windowMs, left);
  return { allowed: accepted === 1, remaining: accepted === 1 ? v.remaining : 0, resetAt: now + v.resetMs };
}

/** A take against the conf's Redis; rejects when Redis fails or does not answer within redis_timeout. */
export function takeFromRedis(target: RedisTarget): (req: TakeRequest) => Promise<Take> {
  return (req) => (req.sliding === true ? takeSliding(target, req) : takeFixed(target, req));
}
