/**
 * limit-req (APISIX priority 1001): a leaky bucket per key, in the access
 * phase (apisix/plugins/limit-req.lua). Requests leak out at `rate` per
 * second; up to `burst` more wait their turn (delayed by excess / rate
 * seconds, or passed at once with `nodelay`), and the rest are rejected with
 * `rejected_code`.
 *
 * `policy: local` keeps the buckets per node, as APISIX's shared dict does
 * for nginx's workers: with several worker processes the primary holds them
 * (the core's per-node shared state, one IPC round trip per request).
 * `redis` and `redis-cluster` keep them in Redis, shared by every node; when
 * Redis fails or does not answer within `redis_timeout`, the request gets
 * 500, or passes with `allow_degradation`.
 */
import type { PluginCleanup, PluginExit, PluginInitContext, RequestContext } from '../core/plugin/index.js';
import { definePlugin } from '../core/plugin/index.js';
import { PerNode } from './lib/per-node.js';
import { compileLimitKey, confDigest, counterKey, type LimitKey } from './lib/limit-key.js';
import { evalScript, initLimiter, redisTarget, withRedis, type RedisTarget } from './lib/redis-client.js';
import { redisClusterPolicySchema, redisPolicyClauses, redisPolicySchema, unusedRedisField, type RedisConf } from './lib/redis-schema.js';
import { incomingFrom, LocalBuckets, REDIS_INCOMING, type BucketAnswer, type BucketRequest } from './limit-req/buckets.js';

export const schema = {
  type: 'object',
  properties: {
    rate: { type: 'number', exclusiveMinimum: 0 },
    burst: { type: 'number', minimum: 0 },
    key: { type: 'string' },
    key_type: { type: 'string', enum: ['var', 'var_combination'], default: 'var' },
    policy: { type: 'string', enum: ['redis', 'redis-cluster', 'local'], default: 'local' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    nodelay: { type: 'boolean', default: false },
    allow_degradation: { type: 'boolean', default: false },
  },
  required: ['rate', 'burst', 'key'],
  ...redisPolicyClauses(redisPolicySchema, redisClusterPolicySchema),
};

export interface LimitReqConf extends RedisConf {
  rate: number;
  burst: number;
  key: string;
  key_type?: 'var' | 'var_combination';
  policy?: 'local' | 'redis' | 'redis-cluster';
  rejected_code?: number;
  rejected_msg?: string;
  nodelay?: boolean;
  allow_degradation?: boolean;
}

interface Compiled {
  readonly rate: number;
  readonly burst: number;
  readonly nodelay: boolean;
  readonly degrade: boolean;
  readonly key: LimitKey;
  readonly digest: string;
  readonly rejected: PluginExit;
  readonly redis?: RedisTarget;
}

/** The node's buckets; a primary that does not answer within 1 s is a limiter failure (500, or allowed with allow_degradation). */
const buckets = new PerNode<BucketRequest, BucketAnswer>('buckets', incomingFrom(new LocalBuckets()), 1_000);
const FAILED: PluginExit = { status: 500 };

function check(conf: LimitReqConf & Record<string, unknown>): string | undefined {
  return unusedRedisField(conf);
}

function compile(conf: LimitReqConf): Compiled {
  const policy = conf.policy ?? 'local';
  return {
    rate: conf.rate,
    burst: conf.burst,
    nodelay: conf.nodelay === true,
    degrade: conf.allow_degradation === true,
    key: compileLimitKey(conf.key, conf.key_type),
    digest: confDigest(conf),
    rejected: { status: conf.rejected_code ?? 503, body: conf.rejected_msg !== undefined ? { error_msg: conf.rejected_msg } : undefined },
    redis: policy === 'local' ? undefined : redisTarget(conf),
  };
}

function sleep(seconds: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000, undefined));
}

/** The exit, or the wait, for one answer. */
function outcome(c: Compiled, delay: BucketAnswer): PluginExit | undefined | Promise<undefined> {
  if (delay < 0) return c.rejected;
  // Delays under a millisecond are not slept, as APISIX's `delay >= 0.001`.
  if (delay >= 0.001 && !c.nodelay) return sleep(delay);
  return undefined;
}

function failed(c: Compiled): PluginExit | undefined {
  return c.degrade ? undefined : FAILED;
}

async function incomingRedis(c: Compiled, target: RedisTarget, key: string): Promise<BucketAnswer> {
  const rate = c.rate * 1000;
  const burst = c.burst * 1000;
  const ttl = Math.ceil(burst / rate) + 1;
  const res = (await withRedis(target, (r) => evalScript(r, REDIS_INCOMING, `limit_req:${key}`, [rate, burst, Date.now(), ttl]))) as [number, string];
  return res[0] === 0 ? -1 : Number(res[1]) / rate;
}

function access(c: Compiled, ctx: RequestContext): PluginExit | void | Promise<PluginExit | undefined> {
  const key = counterKey(ctx, c.digest, c.key);
  if (c.redis !== undefined) {
    return incomingRedis(c, c.redis, key).then(
      (delay) => outcome(c, delay),
      () => failed(c),
    );
  }
  const answer = buckets.call({ key, rate: c.rate, burst: c.burst });
  if (answer instanceof Promise) return answer.then((delay) => outcome(c, delay), () => failed(c));
  return outcome(c, answer);
}

/** Local buckets are per node: with several workers the primary holds them. */
function init(ctx: PluginInitContext): PluginCleanup {
  return initLimiter(buckets, ctx);
}

export default definePlugin({
  name: 'limit-req',
  priority: 1001,
  version: '0.1',
  schema,
  encrypt_fields: ['redis_password'],
  check,
  compile,
  access,
  init,
});
