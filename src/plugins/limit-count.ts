/**
 * limit-count (APISIX priority 1002): at most `count` requests per
 * `time_window` seconds per key, in the access phase
 * (apisix/plugins/limit-count/init.lua with the `local` policy).
 *
 * Windows are fixed and start with a key's first request, as
 * resty.limit.count's. Counters (limit-count/counters.ts) are keyed by route,
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
 */
import { createHash } from 'node:crypto';
import type { PluginCleanup, PluginDefinition, PluginExit, PluginInitContext } from '../core/plugin/contract.js';
import type { RequestContext } from '../core/plugin/ctx.js';
import { compileTemplate, renderTemplate, type Template } from '../core/plugin/template.js';
import { LocalCounters, PrimaryCounters, serveWorkers, type Take } from './limit-count/counters.js';

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
};

export const metadata_schema = {
  type: 'object',
  properties: {
    limit_header: { type: 'string', default: 'X-RateLimit-Limit' },
    remaining_header: { type: 'string', default: 'X-RateLimit-Remaining' },
    reset_header: { type: 'string', default: 'X-RateLimit-Reset' },
  },
};

export interface LimitCountConf {
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
  rt?: Runtime;
}

interface Runtime {
  /** Counter-key prefix: the group, or the conf's content (the route id is added per request). */
  prefix: string;
  perRoute: boolean;
  count: number | Template;
  window: number | Template;
  keyTemplate?: Template;
  rejected: PluginExit;
  failed: PluginExit;
}

/** The counters when this process serves all of the node's requests. */
const local = new LocalCounters();
/** Set in a worker when the node has several: the primary holds the counters (counters.ts). */
let shared: PrimaryCounters | undefined;

const HEADER_LIMIT = 'x-ratelimit-limit';
const HEADER_REMAINING = 'x-ratelimit-remaining';
const HEADER_RESET = 'x-ratelimit-reset';
const QUOTA_KEY = 'limit-count-quota';
const COUNTED_KEY = 'limit-count-counted';

function check(conf: LimitCountConf): string | undefined {
  if (conf.policy !== undefined && conf.policy !== 'local') {
    return `policy ${conf.policy} is not supported yet, use "local"`;
  }
  if (conf.window_type === 'sliding') return 'window_type "sliding" is not supported yet, use "fixed"';
  return undefined;
}

function compile(conf: LimitCountConf): LimitCountConf {
  const keyType = conf.key_type ?? 'var';
  const numberOrTemplate = (v: number | string | undefined): number | Template =>
    typeof v === 'number' ? v : compileTemplate(String(v ?? ''));
  const { rt: _old, ...plain } = conf;
  // A short digest keeps per-request key strings small.
  const confId = createHash('sha1').update(JSON.stringify(plain)).digest('base64url').slice(0, 16);
  return {
    ...conf,
    rt: {
      prefix: conf.group !== undefined ? `group:${conf.group}` : confId,
      perRoute: conf.group === undefined,
      count: numberOrTemplate(conf.count),
      window: numberOrTemplate(conf.time_window),
      keyTemplate: keyType === 'var_combination' ? compileTemplate(conf.key ?? '') : undefined,
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

function limitKey(conf: LimitCountConf, rt: Runtime, ctx: RequestContext): string {
  let key: string | undefined;
  const keyType = conf.key_type ?? 'var';
  if (keyType === 'constant') key = conf.key ?? 'remote_addr';
  else if (keyType === 'var_combination') {
    const rendered = renderTemplate(rt.keyTemplate!, ctx.var);
    key = rendered === '' ? undefined : rendered;
  } else key = ctx.var.get(conf.key ?? 'remote_addr');
  // An absent key falls back to the client address (APISIX), so a missing header is not a free pass.
  if (key === undefined) key = ctx.remoteAddr;
  return rt.perRoute ? `${ctx.route?.id ?? ''}\n${rt.prefix}\n${key}` : `${rt.prefix}\n${key}`;
}

function limit(conf: LimitCountConf, ctx: RequestContext): PluginExit | void | Promise<PluginExit | undefined> {
  const rt = conf.rt ?? (conf.rt = compile(conf).rt!);
  const count = resolveNumber(rt.count, ctx);
  const windowSec = resolveNumber(rt.window, ctx);
  if (count === undefined || windowSec === undefined) {
    return conf.allow_degradation ? undefined : { status: 500 };
  }

  const key = limitKey(conf, rt, ctx);
  const now = Date.now();
  if (shared !== undefined) {
    return shared.take(key, count, windowSec * 1000).then(
      (t) => outcome(conf, rt, ctx, count, t, now),
      // APISIX's answer when its counter store fails: 500, or let the request through with allow_degradation.
      () => (conf.allow_degradation ? undefined : rt.failed),
    );
  }
  return outcome(conf, rt, ctx, count, local.take(key, count, windowSec * 1000, now), now);
}

/** The exit or the quota headers for one take; `now` is when the request was counted. */
function outcome(conf: LimitCountConf, rt: Runtime, ctx: RequestContext, count: number, t: Take, now: number): PluginExit | undefined {
  const reset = Math.max(0, Math.floor((t.resetAt - now) / 10) / 100);
  const show = conf.show_limit_quota_header !== false;
  if (!t.allowed) {
    if (!show) return rt.rejected;
    return {
      status: rt.rejected.status,
      body: rt.rejected.body,
      headers: { [HEADER_LIMIT]: String(count), [HEADER_REMAINING]: '0', [HEADER_RESET]: String(reset) },
    };
  }
  if (show) {
    const quota = [String(count), String(t.remaining), String(reset)];
    ctx.data[QUOTA_KEY] = quota;
    setQuota(ctx, quota);
  }
  return undefined;
}

function setQuota(ctx: RequestContext, quota: string[]): void {
  const h = ctx.response.headers;
  h.set(HEADER_LIMIT, quota[0] as string);
  h.set(HEADER_REMAINING, quota[1] as string);
  h.set(HEADER_RESET, quota[2] as string);
}

function rewrite(conf: LimitCountConf, ctx: RequestContext): PluginExit | void | Promise<PluginExit | undefined> {
  if (ctx.method !== 'OPTIONS') return;
  const rt = conf.rt ?? (conf.rt = compile(conf).rt!);
  // Per instance: a global-rule copy and the route's copy each count once.
  ((ctx.data[COUNTED_KEY] ??= new Set<Runtime>()) as Set<Runtime>).add(rt);
  return limit(conf, ctx);
}

function access(conf: LimitCountConf, ctx: RequestContext): PluginExit | void | Promise<PluginExit | undefined> {
  const counted = ctx.data[COUNTED_KEY] as Set<Runtime> | undefined;
  if (counted !== undefined && conf.rt !== undefined && counted.has(conf.rt)) return;
  return limit(conf, ctx);
}

/** The quota headers set in access belong on the response the client finally gets. */
function header_filter(_conf: LimitCountConf, ctx: RequestContext): void {
  const quota = ctx.data[QUOTA_KEY] as string[] | undefined;
  if (quota !== undefined) setQuota(ctx, quota);
}

/** With several workers per node, the primary counts for all of them, as APISIX's shared dict does for nginx's. */
function init(ctx: PluginInitContext): PluginCleanup | void {
  if (ctx.workers <= 1) return;
  if (ctx.process === 'main') return serveWorkers();
  const counters = new PrimaryCounters();
  shared = counters;
  return () => {
    counters.close();
    if (shared === counters) shared = undefined;
  };
}

const plugin: PluginDefinition<LimitCountConf> = {
  name: 'limit-count',
  priority: 1002,
  version: '0.5',
  schema,
  metadata_schema,
  check,
  compile,
  rewrite,
  access,
  header_filter,
  init,
};

export default plugin;
