/**
 * limit-count (APISIX priority 1002): at most `count` requests per
 * `time_window` seconds per key, in the access phase
 * (apisix/plugins/limit-count/init.lua).
 *
 * `window_type: fixed` windows start with a key's first request, as
 * resty.limit.count's; `sliding` windows are aligned on the epoch and weigh in
 * the previous window's count by how much of it still overlaps the last
 * `time_window` seconds (limit-count/counters.ts). `policy: redis` and
 * `redis-cluster` keep the counters in Redis, shared by every node on it
 * (limit-count/redis.ts); a Redis that fails or does not answer within
 * `redis_timeout` gets 500 `failed to limit count`, or lets the request
 * through with `allow_degradation`. Counters are keyed by route,
 * by the conf's content and by the limit key: recompiling after an unrelated
 * config change keeps the count, while editing this plugin's conf starts
 * afresh, as APISIX keys on the plugin conf's version. `group` shares one
 * counter among every route that names it. The limit holds per node: with
 * several worker processes the primary keeps the counters for all of them,
 * as APISIX's shared dict does for nginx's workers.
 *
 * OPTIONS requests are counted in the rewrite phase instead of access. cors
 * answers preflights in rewrite (it has to run before auth), so counting
 * OPTIONS in access could never see them; counting them in rewrite lets
 * plugin priority decide: by default cors (4000) answers first and preflights
 * are free, as in APISIX, but giving limit-count a higher `_meta.priority`
 * (or running it as a global rule) makes preflights count too.
 *
 * The limit-count plugin_metadata renames the three quota headers
 * (`limit_header`, `remaining_header`, `reset_header`), on 429s and on
 * passed requests alike, as apisix/plugins/limit-count/init.lua does.
 */
import {
  compileTemplate,
  dataKey,
  definePlugin,
  renderTemplate,
  type MaybePromise,
  type PluginCleanup,
  type PluginExit,
  type PluginInitContext,
  type RequestContext,
  type Template,
} from '../core/plugin/index.js';
import { compileLimitKey, confDigest, resolveLimitKey, type LimitKey } from './lib/limit-key.js';
import { PerNode } from './lib/per-node.js';
import { initLimiter, redisTarget } from './lib/redis-client.js';
import { redisClusterPolicySchema, redisPolicySchema, unusedRedisField, type RedisConf } from './lib/redis-schema.js';
import { LocalCounters, takeFrom, type Take, type TakeRequest } from './limit-count/counters.js';
import { takeFromRedis } from './limit-count/redis.js';

export const schema = {
  type: 'object',
  properties: {
    count: { oneOf: [{ type: 'integer', exclusiveMinimum: 0 }, { type: 'string' }] },
    time_window: { oneOf: [{ type: 'integer', exclusiveMinimum: 0 }, { type: 'string' }] },
    window_type: { type: 'string', enum: ['fixed', 'sliding'], default: 'fixed' },
    group: { type: 'string' },
    key: { type: 'string', default: 'remote_addr' },
    key_type: { type: 'string', enum: ['var', 'var_combination', 'constant'], default: 'var' },
    rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
    rejected_msg: { type: 'string', minLength: 1 },
    policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster', 'redis-sentinel'], default: 'local' },
    allow_degradation: { type: 'boolean', default: false },
    show_limit_quota_header: { type: 'boolean', default: true },
    sync_interval: { type: 'number', default: -1 },
  },
  required: ['count', 'time_window'],
  // APISIX's clauses by policy; redis-sentinel's fields are not declared, as check() refuses that policy.
  if: { properties: { policy: { enum: ['redis'] } } },
  then: redisPolicySchema,
  else: { if: { properties: { policy: { enum: ['redis-cluster'] } } }, then: redisClusterPolicySchema },
};

const DEFAULT_LIMIT_HEADER = 'X-RateLimit-Limit';
const DEFAULT_REMAINING_HEADER = 'X-RateLimit-Remaining';
const DEFAULT_RESET_HEADER = 'X-RateLimit-Reset';

export const metadata_schema = {
  type: 'object',
  properties: {
    limit_header: { type: 'string', default: DEFAULT_LIMIT_HEADER },
    remaining_header: { type: 'string', default: DEFAULT_REMAINING_HEADER },
    reset_header: { type: 'string', default: DEFAULT_RESET_HEADER },
  },
};

interface LimitCountMetadata {
  limit_header?: string;
  remaining_header?: string;
  reset_header?: string;
}

export interface LimitCountConf extends RedisConf {
  count?: number | string;
  time_window?: number | string;
  window_type?: 'fixed' | 'sliding';
  group?: string;
  key?: string;
  key_type?: 'var' | 'var_combination' | 'constant';
  rejected_code?: number;
  rejected_msg?: string;
  policy?: 'local' | 'redis' | 'redis-cluster' | 'redis-sentinel';
  allow_degradation?: boolean;
  show_limit_quota_header?: boolean;
  sync_interval?: number;
}

interface LimitCountCompiled extends LimitCountConf {
  readonly rt: Runtime;
}

interface Runtime {
  /** Counter-key prefix: the group, or the conf's content (the route id is added per request). */
  prefix: string;
  perRoute: boolean;
  count: number | Template;
  window: number | Template;
  sliding: boolean;
  key: LimitKey;
  /** Where the count is taken: this node's counters, or Redis. */
  take: (req: TakeRequest) => MaybePromise<Take>;
  rejected: PluginExit;
  failed: PluginExit;
}

/**
 * The node's counters: this process's when it serves all requests, or the
 * primary's for its workers. A primary that does not answer within 1 s is a
 * counter failure (500, or allowed with allow_degradation).
 */
const counters = new PerNode<TakeRequest, Take>('counters', takeFrom(new LocalCounters()), 1_000);
const takeNode = (req: TakeRequest): MaybePromise<Take> => counters.call(req);

/** The three quota header names, lower-case (Portico's header names are). */
interface QuotaHeaders {
  readonly limit: string;
  readonly remaining: string;
  readonly reset: string;
}

function quotaHeaders(meta: LimitCountMetadata): QuotaHeaders {
  return {
    limit: (meta.limit_header ?? DEFAULT_LIMIT_HEADER).toLowerCase(),
    remaining: (meta.remaining_header ?? DEFAULT_REMAINING_HEADER).toLowerCase(),
    reset: (meta.reset_header ?? DEFAULT_RESET_HEADER).toLowerCase(),
  };
}

const DEFAULT_HEADERS = quotaHeaders({});
/** Per metadata object: a metadata write replaces the object, so stale names are never used. */
const headersByMetadata = new WeakMap<object, QuotaHeaders>();

/** The header names the current limit-count plugin_metadata asks for (APISIX's plugin_metadata("limit-count")). */
function headerNames(ctx: RequestContext): QuotaHeaders {
  const meta = ctx.pluginMetadata<LimitCountMetadata>('limit-count');
  if (meta === undefined) return DEFAULT_HEADERS;
  let names = headersByMetadata.get(meta);
  if (names === undefined) headersByMetadata.set(meta, (names = quotaHeaders(meta)));
  return names;
}

/** The header names, then limit, remaining and reset, as set in access for header_filter to set again. */
type Quota = readonly [QuotaHeaders, string, string, string];
const QUOTA = dataKey<Quota>('limit-count-quota');
/** The conf instances that already counted this request (in rewrite, for OPTIONS). */
const COUNTED = dataKey<Set<Runtime>>('limit-count-counted');

function check(conf: LimitCountConf & Record<string, unknown>): string | undefined {
  // APISIX's schema has `rules`; this one does not declare it yet, so refuse it rather than ignore it.
  if (conf.rules !== undefined) return 'rules is not supported yet, use count, time_window and key';
  if (conf.policy === 'redis-sentinel') return 'policy redis-sentinel is not supported yet, use "local", "redis" or "redis-cluster"';
  // APISIX's delayed sync (sync_interval) batches Redis writes per node; Portico writes every request through.
  if (conf.sync_interval !== undefined && conf.sync_interval !== -1 && (conf.policy ?? 'local') !== 'local') {
    return 'sync_interval is not supported yet, leave it at -1 (every request counted in Redis at once)';
  }
  return unusedRedisField(conf);
}

function compile(conf: LimitCountConf): LimitCountCompiled {
  const numberOrTemplate = (v: number | string | undefined): number | Template =>
    typeof v === 'number' ? v : compileTemplate(String(v ?? ''));
  // A short digest keeps per-request key strings small.
  const confId = confDigest(conf);
  return {
    ...conf,
    rt: {
      prefix: conf.group !== undefined ? `group:${conf.group}` : confId,
      perRoute: conf.group === undefined,
      count: numberOrTemplate(conf.count),
      window: numberOrTemplate(conf.time_window),
      sliding: conf.window_type === 'sliding',
      key: compileLimitKey(conf.key ?? 'remote_addr', conf.key_type),
      take: (conf.policy ?? 'local') === 'local' ? takeNode : takeFromRedis(redisTarget(conf)),
      rejected: {
        status: conf.rejected_code ?? 503,
        body: conf.rejected_msg !== undefined ? { error_msg: conf.rejected_msg } : undefined,
      },
      failed: { status: 500, body: { error_msg: 'failed to limit count' } },
    },
  };
}

/** A `$var` count or window resolved for this request; undefined when it is not a positive integer. */
function resolveNumber(v: number | Template, ctx: RequestContext): number | undefined {
  if (typeof v === 'number') return v;
  const n = Number(renderTemplate(v, ctx.var));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

function limitKey(rt: Runtime, ctx: RequestContext): string {
  const key = resolveLimitKey(rt.key, ctx);
  return rt.perRoute ? `${ctx.route?.id ?? ''}:${rt.prefix}:${key}` : `${rt.prefix}:${key}`;
}

function limit(conf: LimitCountCompiled, ctx: RequestContext): PluginExit | void | Promise<PluginExit | undefined> {
  const rt = conf.rt;
  const count = resolveNumber(rt.count, ctx);
  const windowSec = resolveNumber(rt.window, ctx);
  if (count === undefined || windowSec === undefined) {
    return conf.allow_degradation ? undefined : { status: 500 };
  }

  const key = limitKey(rt, ctx);
  const now = Date.now();
  const t = rt.take({ key, count, windowMs: windowSec * 1000, sliding: rt.sliding });
  if (t instanceof Promise) {
    return t.then(
      (taken) => outcome(conf, rt, ctx, count, taken, now),
      // APISIX's answer when its counter store fails: 500, or let the request through with allow_degradation.
      () => (conf.allow_degradation ? undefined : rt.failed),
    );
  }
  return outcome(conf, rt, ctx, count, t, now);
}

/** The exit or the quota headers for one take; `now` is when the request was counted. */
function outcome(conf: LimitCountConf, rt: Runtime, ctx: RequestContext, count: number, t: Take, now: number): PluginExit | undefined {
  const reset = Math.max(0, Math.floor((t.resetAt - now) / 10) / 100);
  const show = conf.show_limit_quota_header !== false;
  if (!t.allowed) {
    if (!show) return rt.rejected;
    const names = headerNames(ctx);
    return {
      status: rt.rejected.status,
      body: rt.rejected.body,
      headers: { [names.limit]: String(count), [names.remaining]: '0', [names.reset]: String(reset) },
    };
  }
  if (show) {
    const quota: Quota = [headerNames(ctx), String(count), String(t.remaining), String(reset)];
    ctx.setData(QUOTA, quota);
    setQuota(ctx, quota);
  }
  return undefined;
}

function setQuota(ctx: RequestContext, quota: Quota): void {
  const h = ctx.response.headers;
  const names = quota[0];
  h.set(names.limit, quota[1]);
  h.set(names.remaining, quota[2]);
  h.set(names.reset, quota[3]);
}

function rewrite(conf: LimitCountCompiled, ctx: RequestContext): PluginExit | void | Promise<PluginExit | undefined> {
  if (ctx.method !== 'OPTIONS') return;
  // Per instance: a global-rule copy and the route's copy each count once.
  let counted = ctx.getData(COUNTED);
  if (counted === undefined) ctx.setData(COUNTED, (counted = new Set()));
  counted.add(conf.rt);
  return limit(conf, ctx);
}

function access(conf: LimitCountCompiled, ctx: RequestContext): PluginExit | void | Promise<PluginExit | undefined> {
  const counted = ctx.getData(COUNTED);
  if (counted !== undefined && counted.has(conf.rt)) return;
  return limit(conf, ctx);
}

/** The quota headers set in access belong on the response the client finally gets. */
function header_filter(_conf: LimitCountCompiled, ctx: RequestContext): void {
  const quota = ctx.getData(QUOTA);
  if (quota !== undefined) setQuota(ctx, quota);
}

/** The counters are per node, as APISIX's shared dict is for nginx's workers: with several workers the primary holds them. */
function init(ctx: PluginInitContext): PluginCleanup {
  return initLimiter(counters, ctx);
}

export default definePlugin({
  name: 'limit-count',
  priority: 1002,
  version: '0.5',
  schema,
  metadata_schema,
  encrypt_fields: ['redis_password'],
  check,
  compile,
  rewrite,
  access,
  header_filter,
  init,
});
