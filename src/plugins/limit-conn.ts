/**
 * limit-conn (APISIX priority 1003): at most `conn` requests in flight per
 * key, counted in access and released in the log phase
 * (apisix/plugins/limit-conn.lua and limit-conn/init.lua). Up to `burst` more
 * are let in after a delay: the n-th request over `conn` waits
 * `default_conn_delay` * floor((n - 1) / conn) seconds; beyond conn + burst a
 * request is rejected with `rejected_code`.
 *
 * APISIX builds its limiter object afresh for every request, so the average
 * of request latencies resty.limit.conn keeps (what `only_use_default_delay:
 * false` feeds) never reaches a later request: the delay is always
 * default_conn_delay's multiple, and Portico gives the same.
 *
 * `conn` and `burst` may be variables (`$http_x_conn`), resolved per request;
 * one that is not a non-negative integer (positive for `conn`) answers 500, or
 * passes with `allow_degradation`. `policy: local` counts per node (with
 * several worker processes the primary holds the counts); `redis` and
 * `redis-cluster` count in Redis, shared by every node.
 */
import { randomUUID } from 'node:crypto';
import type { PluginCleanup, PluginExit, PluginInitContext, RequestContext, Template } from '../core/plugin/index.js';
import { compileTemplate, dataKey, definePlugin, renderTemplate } from '../core/plugin/index.js';
import { PerNode } from './lib/per-node.js';
import { compileLimitKey, confDigest, counterKey, type LimitKey } from './lib/limit-key.js';
import { evalScript, initLimiter, redisTarget, withRedis, type RedisTarget } from './lib/redis-client.js';
import { redisClusterPolicySchema, redisPolicyClauses, redisPolicySchema, unusedRedisField, withKeyTtl, type RedisConf } from './lib/redis-schema.js';
import { LocalConnections, REDIS_INCOMING, type ConnAnswer, type ConnRequest } from './limit-conn/connections.js';

const intOrVar = (minimum: 'exclusiveMinimum' | 'minimum') => ({ oneOf: [{ type: 'integer', [minimum]: 0 }, { type: 'string' }] });

export const schema = {
  type: 'object',
  properties: {
    conn: intOrVar('exclusiveMinimum'),
    burst: intOrVar('minimum'),
    default_conn_delay: { type: 'number', exclusiveMinimum: 0 },
    only_use_default_delay: { type: 'boolean', default: false },
    key: { type: 'string' },
    key_type: { type: 'string', enum: ['var', 'var_combination'], default: 'var' },
    policy: { type: 'string', enum: ['redis', 'redis-cluster', 'local'], default: 'local' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    allow_degradation: { type: 'boolean', default: false },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: { conn: intOrVar('exclusiveMinimum'), burst: intOrVar('minimum'), key: { type: 'string' } },
        required: ['conn', 'burst', 'key'],
      },
    },
  },
  oneOf: [{ required: ['conn', 'burst', 'default_conn_delay', 'key'] }, { required: ['default_conn_delay', 'rules'] }],
  ...redisPolicyClauses(withKeyTtl(redisPolicySchema), withKeyTtl(redisClusterPolicySchema)),
};

export interface LimitConnConf extends RedisConf {
  conn?: number | string;
  burst?: number | string;
  default_conn_delay: number;
  only_use_default_delay?: boolean;
  key?: string;
  key_type?: 'var' | 'var_combination';
  policy?: 'local' | 'redis' | 'redis-cluster';
  rejected_code?: number;
  rejected_msg?: string;
  allow_degradation?: boolean;
  rules?: unknown[];
  key_ttl?: number;
}

interface Compiled {
  readonly conn: number | Template;
  readonly burst: number | Template;
  readonly unitDelay: number;
  readonly degrade: boolean;
  readonly key: LimitKey;
  readonly digest: string;
  readonly rejected: PluginExit;
  readonly redis?: RedisTarget;
  readonly keyTtl: number;
}

/** What the log phase releases: the counted key, and in Redis the request's member and where it lives. */
interface Held {
  key: string;
  member?: string;
  redis?: RedisTarget;
}
const HELD = dataKey<Held[]>('limit-conn-held');

const local = new LocalConnections();
/** The node's counts; a primary that does not answer within 1 s is a limiter failure (500, or allowed with allow_degradation). */
const connections = new PerNode<ConnRequest, ConnAnswer>('connections', (req) => local.handle(req), 1_000);
const FAILED: PluginExit = { status: 500 };

function check(conf: LimitConnConf & Record<string, unknown>): string | undefined {
  if (conf.rules !== undefined) return 'rules is not supported yet, use conn, burst and key';
  return unusedRedisField(conf, ['key_ttl']);
}

function compile(conf: LimitConnConf): Compiled {
  const numberOrTemplate = (v: number | string | undefined): number | Template => (typeof v === 'number' ? v : compileTemplate(String(v ?? '')));
  return {
    conn: numberOrTemplate(conf.conn),
    burst: numberOrTemplate(conf.burst),
    unitDelay: conf.default_conn_delay,
    degrade: conf.allow_degradation === true,
    key: compileLimitKey(conf.key ?? 'remote_addr', conf.key_type),
    digest: confDigest(conf),
    rejected: { status: conf.rejected_code ?? 503, body: conf.rejected_msg !== undefined ? { error_msg: conf.rejected_msg } : undefined },
    redis: (conf.policy ?? 'local') === 'local' ? undefined : redisTarget(conf),
    keyTtl: conf.key_ttl ?? 3600,
  };
}

/** A `$var` conn or burst for this request; undefined unless an integer at least `min` (APISIX's resolve_var checks). */
function resolveInt(v: number | Template, ctx: RequestContext, min: number): number | undefined {
  if (typeof v === 'number') return v;
  const n = Number(renderTemplate(v, ctx.var));
  return Number.isSafeInteger(n) && n >= min ? n : undefined;
}

function sleep(seconds: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000, undefined));
}

function hold(ctx: RequestContext, held: Held): void {
  const list = ctx.getData(HELD);
  if (list === undefined) ctx.setData(HELD, [held]);
  else list.push(held);
}

/** The exit or the wait once the count with this request is known. */
function outcome(c: Compiled, ctx: RequestContext, max: number, count: ConnAnswer, held: Held): PluginExit | undefined | Promise<undefined> {
  if (count < 0) return c.rejected;
  hold(ctx, held);
  if (count <= max) return undefined;
  // The excess waits, as resty.limit.conn makes it: one unit per `max` requests ahead of it.
  const delay = c.unitDelay * Math.floor((count - 1) / max);
  return delay >= 0.001 ? sleep(delay) : undefined;
}

async function incomingRedis(c: Compiled, target: RedisTarget, key: string, limit: number, member: string): Promise<ConnAnswer> {
  const now = Math.floor(Date.now() / 1000);
  const res = (await withRedis(target, (r) => evalScript(r, REDIS_INCOMING, `limit_conn:${key}`, [limit, c.keyTtl, now, member]))) as [number, number];
  return res[0] === 0 ? -1 : res[1];
}

function access(c: Compiled, ctx: RequestContext): PluginExit | void | Promise<PluginExit | undefined> {
  const max = resolveInt(c.conn, ctx, 1);
  const burst = resolveInt(c.burst, ctx, 0);
  if (max === undefined || burst === undefined) return c.degrade ? undefined : FAILED;
  const key = counterKey(ctx, c.digest, c.key);
  const failed = (): PluginExit | undefined => (c.degrade ? undefined : FAILED);
  if (c.redis !== undefined) {
    const held: Held = { key: `limit_conn:${key}`, member: randomUUID(), redis: c.redis };
    return incomingRedis(c, c.redis, key, max + burst, held.member!).then((count) => outcome(c, ctx, max, count, held), failed);
  }
  const count = connections.call({ key, max, burst });
  if (count instanceof Promise) return count.then((n) => outcome(c, ctx, max, n, { key }), failed);
  return outcome(c, ctx, max, count, { key });
}

/** Releases what access counted; a release that fails is dropped (Redis members expire after key_ttl). */
function log(_c: Compiled, ctx: RequestContext): void {
  const list = ctx.getData(HELD);
  if (list === undefined) return;
  for (const h of list) {
    if (h.redis !== undefined) {
      const member = h.member!;
      withRedis(h.redis, (r) => r.zrem(h.key, member)).catch(() => undefined);
    } else {
      const left = connections.call({ key: h.key });
      if (left instanceof Promise) left.catch(() => undefined);
    }
  }
}

function init(ctx: PluginInitContext): PluginCleanup {
  return initLimiter(connections, ctx);
}

export default definePlugin({
  name: 'limit-conn',
  priority: 1003,
  version: '0.1',
  schema,
  encrypt_fields: ['redis_password'],
  check,
  compile,
  access,
  log,
  init,
});
