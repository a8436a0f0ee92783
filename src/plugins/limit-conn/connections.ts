/**
 * limit-conn's counts of requests in flight: resty.limit.conn's arithmetic,
 * held once per node (the plugin's `owned` state, as limit-count's counters),
 * and the same in Redis (apisix/plugins/limit-conn/util.lua), where each
 * request is a member of a sorted set scored by when it expires (`key_ttl`),
 * so a node that dies with requests in flight does not hold their places
 * forever.
 */
import { luaScript } from '../lib/redis-client.js';

/** A request arriving (`max` and `burst` given) or leaving (neither). */
export interface ConnRequest {
  key: string;
  max?: number;
  burst?: number;
}

/** Arriving: the count with this request, or -1 when it is rejected. Leaving: the count left. */
export type ConnAnswer = number;

/** Counts of one process; a key that drops to zero is forgotten. */
export class LocalConnections {
  private readonly counts = new Map<string, number>();

  handle(req: ConnRequest): ConnAnswer {
    const now = this.counts.get(req.key) ?? 0;
    if (req.max === undefined) {
      if (now <= 1) this.counts.delete(req.key);
      else this.counts.set(req.key, now - 1);
      return Math.max(now - 1, 0);
    }
    if (now + 1 > req.max + (req.burst ?? 0)) return -1;
    this.counts.set(req.key, now + 1);
    return now + 1;
  }
}

/**
 * Arriving in Redis, atomically. ARGV: max + burst, key_ttl (s), now (s), the
 * request's id. Returns {1, count} or {0, count}.
 */
export const REDIS_INCOMING = luaScript(`
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local req_id = ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, 0, now)
local count = redis.call('ZCARD', key)
if count >= limit then
  return {0, count}
end
redis.call('ZADD', key, now + ttl, req_id)
redis.call('EXPIRE', key, ttl)
return {1, count + 1}
`);
