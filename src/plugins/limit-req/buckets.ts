/**
 * limit-req's leaky buckets: resty.limit.req's arithmetic, held once per node
 * (the plugin's `owned` state, as limit-count's counters) and in Redis by the
 * same rule (apisix/plugins/limit-req/util.lua).
 *
 * `excess` is how many requests (in thousandths) wait in the bucket; it leaks
 * at `rate` per second and each admitted request adds one. A request that
 * would raise it above `burst` is rejected and changes nothing; an admitted
 * one waits excess / rate seconds (unless `nodelay`).
 */
import { LRUCache } from 'lru-cache';
import { luaScript } from '../lib/redis-client.js';

/** One incoming request as the holder of the buckets is asked about it. */
export interface BucketRequest {
  key: string;
  /** Requests per second, and the burst, both as the conf gives them. */
  rate: number;
  burst: number;
}

/** The delay in seconds an admitted request waits, or -1: rejected. */
export type BucketAnswer = number;

interface Bucket {
  excess: number;
  last: number;
}

/**
 * Buckets of one process. A bucket idle for burst / rate seconds has leaked
 * dry, which is the same as none, so entries expire then; the LRU bound trades
 * exactness under a key flood for memory that cannot grow without limit.
 */
export class LocalBuckets {
  private readonly buckets = new LRUCache<string, Bucket>({ max: 100_000, ttlAutopurge: false });

  incoming(req: BucketRequest, now: number): BucketAnswer {
    const rate = req.rate * 1000;
    const burst = req.burst * 1000;
    const b = this.buckets.get(req.key);
    let excess = 0;
    if (b !== undefined) {
      excess = Math.max(b.excess - (rate * Math.abs(now - b.last)) / 1000 + 1000, 0);
      if (excess > burst) return -1;
    }
    const ttl = Math.ceil((burst / rate) * 1000) + 1000;
    if (b !== undefined) {
      b.excess = excess;
      b.last = now;
      this.buckets.set(req.key, b, { ttl });
    } else this.buckets.set(req.key, { excess, last: now }, { ttl });
    return excess / rate;
  }
}

/** Asks `buckets` with the holder's clock. */
export function incomingFrom(buckets: LocalBuckets): (req: BucketRequest) => BucketAnswer {
  return (req) => buckets.incoming(req, Date.now());
}

/**
 * The same step in Redis, atomically, with the whole state in one hash so a
 * cluster can run it (apisix/plugins/limit-req/util.lua's commit script).
 * ARGV: rate * 1000, burst * 1000, now (ms), ttl (s). Returns {1, excess} or {0, excess}.
 */
export const REDIS_INCOMING = luaScript(`
local state_key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local state = redis.call('hmget', state_key, 'excess', 'last')
local excess
if state[1] and state[2] then
  excess = math.max(tonumber(state[1]) - rate * math.abs(now - tonumber(state[2])) / 1000 + 1000, 0)
  if excess > burst then
    return {0, tostring(excess)}
  end
else
  excess = 0
end
redis.call('hset', state_key, 'excess', excess, 'last', now)
redis.call('expire', state_key, ttl)
return {1, tostring(excess)}
`);
