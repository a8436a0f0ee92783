/**
 * traffic-split (APISIX priority 966): sends a share of a route's traffic to
 * other upstreams, by weight and optionally only for requests whose `vars`
 * match (apisix/plugins/traffic-split.lua). The first rule whose `match`
 * passes (or that has none) decides; its `weighted_upstreams` are picked by
 * weighted round robin, each entry naming an upstream by `upstream_id`, an
 * inline `upstream`, or neither (the route's own upstream).
 *
 * Deliberate differences from APISIX:
 * - an inline upstream is applied whole (health checks, retries, TLS, keep-alive
 *   pool...), where APISIX copies only nodes, type, hash_on, key, pass_host,
 *   upstream_host, timeout and scheme and silently drops the rest;
 * - an `upstream_id` that names no upstream is answered when it is picked, as a
 *   route's missing upstream_id is (502 `failed to find upstream by id`); APISIX
 *   checks every id of the rules it walks and answers 500.
 */
import { idSchema } from '../schema/defs.js';
import { upstreamSchema } from '../schema/upstream.js';
import { checkNodeKeys } from '../schema/upstream-check.js';
import { compileExpr, definePlugin, type CompiledExpr, type CompileEnv, type PluginUpstream, type RequestContext, type UpstreamConf } from '../core/plugin/index.js';

export const schema = {
  type: 'object',
  properties: {
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          match: {
            type: 'array',
            items: { type: 'object', properties: { vars: { type: 'array' } } },
          },
          weighted_upstreams: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                upstream_id: idSchema,
                upstream: upstreamSchema,
                weight: {
                  description: 'used to split traffic between different upstreams for plugin configuration',
                  type: 'integer',
                  default: 1,
                  minimum: 0,
                },
              },
            },
            // Without upstreams, the route's own upstream takes the traffic.
            default: [{ weight: 1 }],
            minItems: 1,
            maxItems: 20,
          },
        },
      },
    },
  },
};

interface WeightedUpstream {
  upstream_id?: string | number;
  upstream?: UpstreamConf;
  weight?: number;
}

export interface TrafficSplitConf {
  rules?: Array<{ match?: Array<{ vars?: unknown[] }>; weighted_upstreams?: WeightedUpstream[] }>;
}

/** Where a pick sends the request: an upstream id, a built upstream, or the route's own (undefined). */
type Destination = string | PluginUpstream | undefined;

/**
 * nginx's smooth weighted round robin: over any window of `total` picks each
 * destination gets exactly its weight, interleaved rather than in runs.
 */
class WeightedPicker {
  private readonly current: number[];
  private readonly total: number;

  constructor(
    private readonly destinations: readonly Destination[],
    private readonly weights: readonly number[],
  ) {
    this.current = weights.map(() => 0);
    this.total = weights.reduce((a, b) => a + b, 0);
  }

  pick(): Destination {
    const { current, weights } = this;
    let best = -1;
    for (let i = 0; i < weights.length; i++) {
      current[i]! += weights[i]!;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    if (best < 0) return undefined;
    current[best]! -= this.total;
    return this.destinations[best];
  }
}

interface CompiledRule {
  /** Undefined: the rule has no `match` and always applies. */
  readonly match: readonly CompiledExpr[] | undefined;
  /** Undefined when every weight is 0: the route's own upstream serves. */
  readonly picker: WeightedPicker | undefined;
}

interface TrafficSplitCompiled {
  readonly rules: readonly CompiledRule[];
}

function check(conf: TrafficSplitConf): string | undefined {
  for (const rule of conf.rules ?? []) {
    for (const wu of rule.weighted_upstreams ?? []) {
      const err = wu.upstream === undefined ? undefined : checkNodeKeys(wu.upstream as unknown as Record<string, unknown>);
      if (err !== undefined) return `weighted_upstreams: ${err}`;
      if (wu.upstream?.pass_host === 'rewrite' && !wu.upstream.upstream_host) return "weighted_upstreams: `upstream_host` can't be empty when `pass_host` is `rewrite`";
    }
    for (const m of rule.match ?? []) {
      try {
        compileExpr(m.vars ?? []);
      } catch (e) {
        return `failed to validate the 'vars' expression: ${(e as Error).message}`;
      }
    }
  }
  return undefined;
}

function compile(conf: TrafficSplitConf, env: CompileEnv): TrafficSplitCompiled {
  const rules = (conf.rules ?? []).map((rule): CompiledRule => {
    const destinations: Destination[] = [];
    const weights: number[] = [];
    for (const wu of rule.weighted_upstreams ?? [{ weight: 1 }]) {
      const weight = wu.weight ?? 1;
      // A zero weight never wins a round (resty.roundrobin leaves it out too).
      if (weight === 0) continue;
      // APISIX looks at upstream_id first: with both, the inline upstream is ignored.
      destinations.push(wu.upstream_id !== undefined ? String(wu.upstream_id) : wu.upstream !== undefined ? env.upstream(wu.upstream) : undefined);
      weights.push(weight);
    }
    return {
      match: rule.match === undefined ? undefined : rule.match.map((m) => compileExpr(m.vars ?? [])),
      picker: weights.length === 0 ? undefined : new WeightedPicker(destinations, weights),
    };
  });
  return { rules };
}

function access(conf: TrafficSplitCompiled, ctx: RequestContext): void {
  for (const rule of conf.rules) {
    if (rule.match !== undefined && rule.match.length > 0 && !rule.match.some((m) => m(ctx.var))) continue;
    ctx.useUpstream(rule.picker?.pick());
    return;
  }
}

export default definePlugin({
  name: 'traffic-split',
  priority: 966,
  version: '0.1',
  schema,
  check,
  compile,
  access,
});
