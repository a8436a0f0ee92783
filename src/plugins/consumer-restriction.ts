/**
 * consumer-restriction (APISIX priority 2400): lets requests through by who
 * they are (`consumer_name`, `consumer_group_id`) or where they go
 * (`service_id`, `route_id`), in the access phase, after authentication
 * (apisix/plugins/consumer-restriction.lua). The blacklist rejects first; a
 * whitelisted value passes; otherwise `allowed_by_methods` limits the methods
 * of the users it names. No value at all (no consumer identified) is a 401.
 */
import { definePlugin, type PluginExit, type RequestContext } from '../core/plugin/index.js';
import { methodSchema } from '../schema/defs.js';

const TYPES = ['consumer_name', 'service_id', 'route_id', 'consumer_group_id'] as const;

export const schema = {
  type: 'object',
  properties: {
    type: { type: 'string', enum: TYPES, default: 'consumer_name' },
    blacklist: { type: 'array', minItems: 1, items: { type: 'string' } },
    whitelist: { type: 'array', minItems: 1, items: { type: 'string' } },
    allowed_by_methods: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          user: { type: 'string' },
          methods: { type: 'array', minItems: 1, items: methodSchema },
        },
      },
    },
    rejected_code: { type: 'integer', minimum: 200, default: 403 },
    rejected_msg: { type: 'string' },
  },
  anyOf: [{ required: ['blacklist'] }, { required: ['whitelist'] }, { required: ['allowed_by_methods'] }],
};

export interface ConsumerRestrictionConf {
  type?: (typeof TYPES)[number];
  blacklist?: string[];
  whitelist?: string[];
  allowed_by_methods?: Array<{ user?: string; methods?: string[] }>;
  rejected_code?: number;
  rejected_msg?: string;
}

interface ConsumerRestrictionCompiled {
  readonly type: (typeof TYPES)[number];
  readonly blacklist: ReadonlySet<string> | undefined;
  readonly whitelist: ReadonlySet<string> | undefined;
  /**
   * Methods by user, the first entry for a user deciding as in APISIX's
   * is_method_allowed; a user without an entry may use any method.
   */
  readonly methods: ReadonlyMap<string | undefined, ReadonlySet<string>> | undefined;
  readonly reject: PluginExit;
  readonly missing: PluginExit;
}

function compile(conf: ConsumerRestrictionConf): ConsumerRestrictionCompiled {
  const type = conf.type ?? 'consumer_name';
  let methods: Map<string | undefined, Set<string>> | undefined;
  if (conf.allowed_by_methods !== undefined && conf.allowed_by_methods.length > 0) {
    methods = new Map();
    for (const entry of conf.allowed_by_methods) if (!methods.has(entry.user)) methods.set(entry.user, new Set(entry.methods ?? []));
  }
  return {
    type,
    blacklist: conf.blacklist && new Set(conf.blacklist),
    whitelist: conf.whitelist && new Set(conf.whitelist),
    methods,
    reject: Object.freeze({ status: conf.rejected_code ?? 403, body: Object.freeze({ message: conf.rejected_msg ?? `The ${type} is forbidden.` }) }),
    missing: Object.freeze({ status: 401, body: Object.freeze({ message: `The request is rejected, please check the ${type} for this request` }) }),
  };
}

function access(conf: ConsumerRestrictionCompiled, ctx: RequestContext): PluginExit | void {
  const value = ctx.var.get(conf.type);
  if (value === undefined) return conf.missing;
  if (conf.blacklist?.has(value)) return conf.reject;
  let block = false;
  const whitelisted = conf.whitelist?.has(value) ?? false;
  if (conf.whitelist !== undefined && !whitelisted) block = true;
  if (conf.methods !== undefined && !whitelisted) {
    const allowed = conf.methods.get(value);
    if (allowed !== undefined && !allowed.has(ctx.method)) block = true;
  }
  if (block) return conf.reject;
}

export default definePlugin({
  name: 'consumer-restriction',
  priority: 2400,
  version: '0.1',
  schema,
  compile,
  access,
});
