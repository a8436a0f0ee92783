/**
 * cors (APISIX priority 4000): answers CORS preflights and adds the
 * Access-Control-* headers (apisix/plugins/cors.lua).
 *
 * Every OPTIONS request is answered 200 in the rewrite phase without reaching
 * the upstream, as APISIX does. Being in rewrite at priority 4000 puts it
 * ahead of auth plugins (key-auth 2500), which browsers need: preflights carry
 * no credentials. The headers themselves are added in header_filter, so they
 * also land on responses that other plugins ended early (401, 429...).
 *
 * `allow_origins_by_metadata` names entries of the cors plugin_metadata's
 * `allow_origins` map, so many routes share origin lists kept in one place.
 */
import { compilePcre, definePlugin, type PluginExit, type RequestContext } from '../core/plugin/index.js';

const ORIGINS_PATTERN = '^(\\*|\\*\\*|null|\\w+://[^,]+(,\\w+://[^,]+)*)$';

const regexList = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 4096 }, minItems: 1, uniqueItems: true };

export const schema = {
  type: 'object',
  properties: {
    allow_origins: {
      description: "you can use '*' to allow all origins when no credentials, '**' to allow forcefully (it will bring some security risks, be careful), multiple origin use ',' to split. default: *.",
      type: 'string',
      pattern: ORIGINS_PATTERN,
      default: '*',
    },
    allow_methods: { type: 'string', default: '*' },
    allow_headers: { type: 'string', default: '*' },
    expose_headers: { type: 'string' },
    max_age: { type: 'integer', default: 5 },
    allow_credential: { type: 'boolean', default: false },
    allow_origins_by_regex: regexList,
    allow_origins_by_metadata: regexList,
    timing_allow_origins: { type: 'string', pattern: ORIGINS_PATTERN },
    timing_allow_origins_by_regex: regexList,
  },
};

/** The cors plugin_metadata: named origin lists that routes pick with `allow_origins_by_metadata`. */
interface CorsMetadata {
  allow_origins?: Readonly<Record<string, string>>;
}

export const metadata_schema = {
  type: 'object',
  properties: {
    allow_origins: { type: 'object', additionalProperties: { type: 'string', pattern: ORIGINS_PATTERN } },
  },
};

/** How one origin option (ACAO or Timing-Allow-Origin) is decided, precomputed. */
interface OriginRule {
  /** '*', '**', a single origin, or undefined when only regexes apply. */
  single?: string;
  /** A comma-separated list, as a set. */
  list?: ReadonlySet<string>;
  regex?: RegExp;
}

interface Runtime {
  acao: OriginRule;
  tao?: OriginRule;
  methods: string;
  maxAge: string;
}

export interface CorsConf {
  allow_origins?: string;
  allow_methods?: string;
  allow_headers?: string;
  expose_headers?: string;
  max_age?: number;
  allow_credential?: boolean;
  allow_origins_by_regex?: string[];
  allow_origins_by_metadata?: string[];
  timing_allow_origins?: string;
  timing_allow_origins_by_regex?: string[];
}

interface CorsCompiled extends CorsConf {
  readonly rt: Runtime;
}

const PREFLIGHT: PluginExit = Object.freeze({ status: 200 });

function check(conf: CorsConf): string | undefined {
  // Defaults count: APISIX fills them in before this check.
  if (conf.allow_credential) {
    if (
      (conf.allow_origins ?? '*') === '*' ||
      (conf.allow_methods ?? '*') === '*' ||
      (conf.allow_headers ?? '*') === '*' ||
      conf.expose_headers === '*' ||
      conf.timing_allow_origins === '*'
    ) {
      return "you can not set '*' for other option when 'allow_credential' is true";
    }
  }
  for (const re of [...(conf.allow_origins_by_regex ?? []), ...(conf.timing_allow_origins_by_regex ?? [])]) {
    try {
      compilePcre(re);
    } catch (e) {
      return (e as Error).message;
    }
  }
  return undefined;
}

function originRule(origins: string | undefined, regexes: string[] | undefined): OriginRule {
  // As APISIX: when regexes are configured they alone decide.
  if (regexes) return { regex: compilePcre(regexes.join('|')) };
  if (origins === undefined) return {};
  if (origins.includes(',')) return { list: new Set(origins.split(',').filter((o) => o !== '')) };
  return { single: origins };
}

function compile(conf: CorsConf): CorsCompiled {
  const methods = conf.allow_methods ?? '*';
  return {
    ...conf,
    rt: {
      acao: originRule(conf.allow_origins ?? '*', conf.allow_origins_by_regex),
      tao:
        conf.timing_allow_origins !== undefined || conf.timing_allow_origins_by_regex
          ? originRule(conf.timing_allow_origins, conf.timing_allow_origins_by_regex)
          : undefined,
      methods: methods === '**' ? 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS,CONNECT,TRACE' : methods,
      maxAge: String(conf.max_age ?? 5),
    },
  };
}

/** The origin to send back, or undefined when the request's origin is not allowed. */
function decide(rule: OriginRule, reqOrigin: string | undefined): string | undefined {
  if (rule.regex) return reqOrigin !== undefined && rule.regex.test(reqOrigin) ? reqOrigin : undefined;
  if (rule.list) return reqOrigin !== undefined && rule.list.has(reqOrigin) ? reqOrigin : undefined;
  const single = rule.single;
  if (single === undefined) return undefined;
  if (single === '**') return reqOrigin ?? '*';
  if (single === '*' || single === reqOrigin) return single;
  return undefined;
}

/** Compiled per metadata object: a metadata write replaces the object, so stale rules are never used. */
const metadataRules = new WeakMap<object, Map<string, OriginRule>>();

/**
 * APISIX's process_with_allow_origins_by_metadata: the first named entry of the
 * metadata's allow_origins map that allows the request's origin gives that
 * origin back (never `*`: the entry names which origins, and one matched).
 */
function byMetadata(names: readonly string[], ctx: RequestContext, reqOrigin: string | undefined): string | undefined {
  if (reqOrigin === undefined) return undefined;
  const map = ctx.pluginMetadata<CorsMetadata>('cors')?.allow_origins;
  if (map === undefined || typeof map !== 'object') return undefined;
  let rules = metadataRules.get(map);
  if (rules === undefined) metadataRules.set(map, (rules = new Map()));
  for (const name of names) {
    const origins = map[name];
    if (typeof origins !== 'string') continue;
    let rule = rules.get(name);
    if (rule === undefined) rules.set(name, (rule = originRule(origins, undefined)));
    if (decide(rule, reqOrigin) !== undefined) return reqOrigin;
  }
  return undefined;
}

function rewrite(_conf: CorsCompiled, ctx: RequestContext): PluginExit | void {
  if (ctx.method === 'OPTIONS') return PREFLIGHT;
}

function header_filter(conf: CorsCompiled, ctx: RequestContext): void {
  const rt = conf.rt;
  // The Origin as the client sent it (APISIX keeps ctx.original_request_origin): plugin edits to the
  // upstream request's headers never reach requestHeader().
  const reqOrigin = ctx.requestHeader('origin');
  const headers = ctx.response.headers;

  if ((conf.allow_origins ?? '*') !== '*') headers.add('vary', 'Origin');
  let allow: string | undefined;
  let local = true;
  if (conf.allow_origins_by_metadata) {
    allow = byMetadata(conf.allow_origins_by_metadata, ctx, reqOrigin);
    // As APISIX: with metadata named, the route's own allow_origins applies only when set to something other than '*'.
    local = allow === undefined && (conf.allow_origins ?? '*') !== '*';
  }
  if (local) allow = decide(rt.acao, reqOrigin);
  if (allow !== undefined) {
    headers.set('access-control-allow-origin', allow);
    headers.set('access-control-allow-methods', rt.methods);
    headers.set('access-control-max-age', rt.maxAge);
    if (conf.expose_headers) headers.set('access-control-expose-headers', conf.expose_headers);
    const allowHeaders = conf.allow_headers ?? '*';
    if (allowHeaders === '**') {
      const requested = ctx.requestHeader('access-control-request-headers');
      if (requested !== undefined) headers.set('access-control-allow-headers', requested);
    } else {
      headers.set('access-control-allow-headers', allowHeaders);
    }
    if (conf.allow_credential) headers.set('access-control-allow-credentials', 'true');
  }

  if (rt.tao) {
    const timing = decide(rt.tao, reqOrigin);
    if (timing !== undefined) headers.set('timing-allow-origin', timing);
  }
}

export default definePlugin({
  name: 'cors',
  priority: 4000,
  version: '0.1',
  schema,
  metadata_schema,
  check,
  compile,
  rewrite,
  header_filter,
});
