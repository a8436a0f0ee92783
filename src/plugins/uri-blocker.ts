/**
 * uri-blocker (APISIX priority 2900): rejects requests whose URI matches one
 * of `block_rules` (PCRE regexes), in the rewrite phase
 * (apisix/plugins/uri-blocker.lua).
 *
 * Deliberate difference: APISIX matches the raw `request_uri` only, so
 * `//internal`, `%69nternal` or `/./internal` slip past `^/internal`
 * (CVE-2021-43557). Portico matches the normalised path the router matched
 * (decoded once, dot segments and `//` resolved), followed by `?query` when
 * there is one, and also the raw request target, so a rule written for
 * either form blocks: it can only block more than APISIX, never less.
 */
import { compilePcre, definePlugin, type PluginExit, type RequestContext } from '../core/plugin/index.js';

export const schema = {
  type: 'object',
  properties: {
    block_rules: {
      type: 'array',
      items: { type: 'string', minLength: 1, maxLength: 4096 },
      uniqueItems: true,
    },
    rejected_code: { type: 'integer', minimum: 200, default: 403 },
    rejected_msg: { type: 'string', minLength: 1 },
    case_insensitive: { type: 'boolean', default: false },
  },
  required: ['block_rules'],
};

export interface UriBlockerConf {
  block_rules: string[];
  rejected_code?: number;
  rejected_msg?: string;
  case_insensitive?: boolean;
}

interface UriBlockerCompiled {
  readonly rules: readonly RegExp[];
  readonly exit: PluginExit;
}

function check(conf: UriBlockerConf): string | undefined {
  for (const rule of conf.block_rules) {
    try {
      compilePcre(rule);
    } catch (e) {
      return `invalid block_rules item ${JSON.stringify(rule)}: ${(e as Error).message}`;
    }
  }
  return undefined;
}

function compile(conf: UriBlockerConf): UriBlockerCompiled {
  const flags = conf.case_insensitive ? 'i' : '';
  return {
    rules: conf.block_rules.map((r) => compilePcre(r, flags)),
    exit: Object.freeze({
      status: conf.rejected_code ?? 403,
      body: conf.rejected_msg === undefined ? undefined : Object.freeze({ error_msg: conf.rejected_msg }),
    }),
  };
}

function blocked(rules: readonly RegExp[], uri: string): boolean {
  for (const re of rules) if (re.test(uri)) return true;
  return false;
}

function rewrite(conf: UriBlockerCompiled, ctx: RequestContext): PluginExit | void {
  const normalised = ctx.query === '' ? ctx.path : `${ctx.path}?${ctx.query}`;
  if (blocked(conf.rules, normalised)) return conf.exit;
  const raw = ctx.var.get('request_uri');
  if (raw !== undefined && raw !== normalised && blocked(conf.rules, raw)) return conf.exit;
}

export default definePlugin({
  name: 'uri-blocker',
  priority: 2900,
  version: '0.1',
  schema,
  check,
  compile,
  rewrite,
});
