/**
 * api-breaker (APISIX priority 1005): a circuit breaker per host + path
 * (apisix/plugins/api-breaker.lua). The log phase counts the upstream's
 * statuses: every `unhealthy.failures`-th unhealthy status opens the breaker
 * (its time stamp is taken), and the access phase then answers
 * `break_response_code` without calling the upstream for 2^n seconds, n being
 * the failures counted so far divided by `unhealthy.failures`, capped at
 * `max_breaker_sec`: each time it trips again the break doubles. Once that
 * time has passed requests reach the upstream again (half-open); an
 * unhealthy answer trips it again straight away when the count reaches the
 * next multiple, and `healthy.successes` healthy answers in a row close it,
 * forgetting the counts.
 *
 * Differences from APISIX: the state lives in each serving process (APISIX
 * keeps it in a shared dict per node), in an LRU bounded to 10 000 host+path
 * entries; times are kept to the millisecond rather than the second.
 */
import { LRUCache } from 'lru-cache';
import { compileTemplate, definePlugin, renderTemplate, type PluginExit, type RequestContext, type Template } from '../core/plugin/index.js';
import { escapeControlChars } from './lib/control-chars.js';

export const schema = {
  type: 'object',
  properties: {
    break_response_code: { type: 'integer', minimum: 200, maximum: 599 },
    break_response_body: { type: 'string' },
    break_response_headers: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          key: { type: 'string', minLength: 1 },
          value: { type: 'string', minLength: 1 },
        },
        required: ['key', 'value'],
      },
    },
    max_breaker_sec: { type: 'integer', minimum: 3, default: 300 },
    unhealthy: {
      type: 'object',
      properties: {
        http_statuses: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 500, maximum: 599 }, uniqueItems: true, default: [500] },
        failures: { type: 'integer', minimum: 1, default: 3 },
      },
      default: { http_statuses: [500], failures: 3 },
    },
    healthy: {
      type: 'object',
      properties: {
        http_statuses: { type: 'array', minItems: 1, items: { type: 'integer', minimum: 200, maximum: 499 }, uniqueItems: true, default: [200] },
        successes: { type: 'integer', minimum: 1, default: 3 },
      },
      default: { http_statuses: [200], successes: 3 },
    },
  },
  required: ['break_response_code'],
};

export interface ApiBreakerConf {
  break_response_code: number;
  break_response_body?: string;
  break_response_headers?: Array<{ key: string; value: string }>;
  max_breaker_sec?: number;
  unhealthy?: { http_statuses?: number[]; failures?: number };
  healthy?: { http_statuses?: number[]; successes?: number };
}

interface ApiBreakerCompiled {
  readonly maxBreakerMs: number;
  readonly failures: number;
  readonly successes: number;
  readonly unhealthyStatuses: ReadonlySet<number>;
  readonly healthyStatuses: ReadonlySet<number>;
  readonly status: number;
  readonly body: string | undefined;
  /** APISIX sends them only with a body. */
  readonly headers: ReadonlyArray<readonly [string, Template]>;
}

/** One host + path's breaker (APISIX's unhealthy-, healthy- and unhealthy-lasttime keys). */
interface Breaker {
  unhealthy: number;
  healthy: number;
  /** When the breaker last tripped (ms); 0: never, or forgotten after max_breaker_sec. */
  trippedAt: number;
}

const breakers = new LRUCache<string, Breaker>({ max: 10_000 });

const keyOf = (ctx: RequestContext): string => `${ctx.host}${ctx.path}`;

function compile(conf: ApiBreakerConf): ApiBreakerCompiled {
  return {
    maxBreakerMs: (conf.max_breaker_sec ?? 300) * 1000,
    failures: conf.unhealthy?.failures ?? 3,
    successes: conf.healthy?.successes ?? 3,
    unhealthyStatuses: new Set(conf.unhealthy?.http_statuses ?? [500]),
    healthyStatuses: new Set(conf.healthy?.http_statuses ?? [200]),
    status: conf.break_response_code,
    body: conf.break_response_body,
    headers: (conf.break_response_headers ?? []).map(({ key, value }) => [key, compileTemplate(value)] as const),
  };
}

function access(conf: ApiBreakerCompiled, ctx: RequestContext): PluginExit | void {
  const b = breakers.get(keyOf(ctx));
  if (b === undefined || b.unhealthy === 0 || b.trippedAt === 0) return;
  const now = Date.now();
  // APISIX's lasttime key expires after max_breaker_sec.
  if (now - b.trippedAt > conf.maxBreakerMs) return;
  const times = Math.max(1, Math.floor(b.unhealthy / conf.failures));
  const breakMs = Math.min(2 ** times * 1000, conf.maxBreakerMs);
  if (b.trippedAt + breakMs < now) return;
  if (conf.body === undefined) return { status: conf.status };
  let headers: Record<string, string> | undefined;
  if (conf.headers.length > 0) {
    headers = {};
    for (const [name, t] of conf.headers) headers[name] = renderTemplate(t, ctx.var, null, escapeControlChars);
  }
  return { status: conf.status, body: conf.body, headers };
}

function log(conf: ApiBreakerCompiled, ctx: RequestContext): void {
  // Only an upstream's answer counts (APISIX's upstream_status): not the breaker's own, nor another plugin's exit.
  if (ctx.target === undefined) return;
  const status = ctx.responseStatus;
  const key = keyOf(ctx);
  if (conf.unhealthyStatuses.has(status)) {
    let b = breakers.get(key);
    if (b === undefined) breakers.set(key, (b = { unhealthy: 0, healthy: 0, trippedAt: 0 }));
    b.unhealthy++;
    b.healthy = 0;
    if (b.unhealthy % conf.failures === 0) b.trippedAt = Date.now();
    return;
  }
  if (!conf.healthyStatuses.has(status)) return;
  const b = breakers.get(key);
  if (b === undefined || b.unhealthy === 0) return;
  if (++b.healthy >= conf.successes) breakers.delete(key);
}

export default definePlugin({
  name: 'api-breaker',
  priority: 1005,
  version: '0.1',
  schema,
  compile,
  access,
  log,
});
