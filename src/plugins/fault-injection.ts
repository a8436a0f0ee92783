/**
 * fault-injection (APISIX priority 11000): delays and/or aborts requests in
 * the rewrite phase (apisix/plugins/fault-injection.lua), each for a
 * `percentage` of requests and only when one of its `vars` expressions
 * matches. The delay comes first, then the abort; `abort.body` and string
 * header values take `$var` references.
 */
import { compileExpr, compileTemplate, definePlugin, renderTemplate, type CompiledExpr, type PluginExit, type RequestContext, type Template } from '../core/plugin/index.js';
import { escapeControlChars } from './lib/control-chars.js';

const varsSchema = { type: 'array', maxItems: 20, items: { type: 'array' } };

export const schema = {
  type: 'object',
  properties: {
    abort: {
      type: 'object',
      properties: {
        http_status: { type: 'integer', minimum: 200 },
        body: { type: 'string', minLength: 0 },
        headers: {
          type: 'object',
          minProperties: 1,
          patternProperties: { '^[^:]+$': { oneOf: [{ type: 'string' }, { type: 'number' }] } },
        },
        percentage: { type: 'integer', minimum: 0, maximum: 100 },
        vars: varsSchema,
      },
      required: ['http_status'],
    },
    delay: {
      type: 'object',
      properties: {
        duration: { type: 'number', minimum: 0 },
        percentage: { type: 'integer', minimum: 0, maximum: 100 },
        vars: varsSchema,
      },
      required: ['duration'],
    },
  },
  minProperties: 1,
};

export interface FaultInjectionConf {
  abort?: { http_status: number; body?: string; headers?: Record<string, string | number>; percentage?: number; vars?: unknown[][] };
  delay?: { duration: number; percentage?: number; vars?: unknown[][] };
}

interface Fault {
  readonly percentage: number | undefined;
  /** Undefined: no `vars`, every request qualifies. */
  readonly vars: readonly CompiledExpr[] | undefined;
}

interface FaultInjectionCompiled {
  readonly delay: (Fault & { readonly ms: number }) | undefined;
  readonly abort: (Fault & { readonly status: number; readonly body: Template | undefined; readonly headers: ReadonlyArray<[string, Template]> }) | undefined;
}

// RFC 9110 token: APISIX's schema only forbids `:`, but a name Node cannot send would turn every abort into a 500.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function check(conf: FaultInjectionConf): string | undefined {
  for (const name of Object.keys(conf.abort?.headers ?? {})) {
    if (!TOKEN.test(name)) return `invalid header name in abort.headers: ${JSON.stringify(name)}`;
  }
  for (const vars of [conf.abort?.vars, conf.delay?.vars]) {
    for (const v of vars ?? []) {
      try {
        compileExpr(v);
      } catch (e) {
        return (e as Error).message;
      }
    }
  }
  return undefined;
}

function compile(conf: FaultInjectionConf): FaultInjectionCompiled {
  const vars = (v: unknown[][] | undefined) => v?.map((e) => compileExpr(e));
  const { abort, delay } = conf;
  return {
    delay: delay && { percentage: delay.percentage, vars: vars(delay.vars), ms: delay.duration * 1000 },
    abort: abort && {
      percentage: abort.percentage,
      vars: vars(abort.vars),
      status: abort.http_status,
      body: abort.body === undefined ? undefined : compileTemplate(abort.body),
      // A number has no `$` in it: its template is the constant it was.
      headers: Object.entries(abort.headers ?? {}).map(([k, v]) => [k, compileTemplate(String(v))]),
    },
  };
}

/** APISIX's sample_hit (random(1, 100) <= percentage) and vars_match (any expression; an empty list never matches). */
function applies(fault: Fault, ctx: RequestContext): boolean {
  if (fault.vars !== undefined && !fault.vars.some((e) => e(ctx.var))) return false;
  return fault.percentage === undefined || Math.floor(Math.random() * 100) + 1 <= fault.percentage;
}

function abortExit(abort: NonNullable<FaultInjectionCompiled['abort']>, ctx: RequestContext): PluginExit {
  let headers: Record<string, string> | undefined;
  if (abort.headers.length > 0) {
    headers = {};
    for (const [name, t] of abort.headers) headers[name] = renderTemplate(t, ctx.var, null, escapeControlChars);
  }
  return { status: abort.status, body: abort.body === undefined ? undefined : renderTemplate(abort.body, ctx.var), headers };
}

function rewrite(conf: FaultInjectionCompiled, ctx: RequestContext): PluginExit | void | Promise<PluginExit | void> {
  // Both decisions are taken before the delay, as APISIX evaluates vars first.
  const abort = conf.abort !== undefined && applies(conf.abort, ctx) ? conf.abort : undefined;
  if (conf.delay !== undefined && applies(conf.delay, ctx)) {
    return new Promise((resolve) => setTimeout(() => resolve(abort && abortExit(abort, ctx)), conf.delay!.ms));
  }
  if (abort !== undefined) return abortExit(abort, ctx);
}

export default definePlugin({
  name: 'fault-injection',
  priority: 11000,
  version: '0.1',
  schema,
  check,
  compile,
  rewrite,
});
