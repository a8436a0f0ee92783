/**
 * proxy-rewrite (APISIX priority 1008): rewrites what the upstream receives —
 * path (uri / regex_uri), host, method and request headers — in the rewrite
 * phase. Follows apisix/plugins/proxy-rewrite.lua: `uri` wins over
 * `regex_uri`; the client's query string is appended to the new path; header
 * actions run add, then set, then remove (the Lua code's order; the doc's
 * "add, remove, set" sentence disagrees with it).
 */
import {
  applyReplacement,
  compilePcre,
  compileReplacement,
  compileTemplate,
  definePlugin,
  renderTemplate,
  type Piece,
  type PluginExit,
  type RequestContext,
  type Template,
  type Vars,
} from '../core/plugin/index.js';

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'OPTIONS', 'MKCOL', 'COPY', 'MOVE', 'PROPFIND', 'LOCK', 'UNLOCK', 'PATCH', 'TRACE'];

const headerValue = { oneOf: [{ type: 'string' }, { type: 'number' }] };
const headerValues = {
  oneOf: [
    { type: 'string' },
    { type: 'number' },
    { type: 'array', minItems: 1, items: headerValue },
  ],
};


export const schema = {
  type: 'object',
  properties: {
    uri: { description: 'new uri for upstream', type: 'string', minLength: 1, maxLength: 4096, pattern: '^\\/.*' },
    method: { description: 'proxy route method', type: 'string', enum: METHODS },
    regex_uri: {
      description: 'new uri that substitute from client uri for upstream, lower priority than uri property',
      type: 'array',
      minItems: 2,
      items: { description: 'regex uri', type: 'string' },
    },
    host: { description: 'new host for upstream', type: 'string', pattern: '^[0-9a-zA-Z-.]+(:\\d{1,5})?$' },
    headers: {
      description: 'new headers for request',
      oneOf: [
        {
          type: 'object',
          minProperties: 1,
          additionalProperties: false,
          properties: {
            add: { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValues } },
            set: { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValues } },
            remove: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
          },
        },
        {
          type: 'object',
          minProperties: 1,
          patternProperties: { '^[^:]+$': headerValue },
        },
      ],
    },
    use_real_request_uri_unsafe: {
      description: 'use real_request_uri instead, THIS IS VERY UNSAFE.',
      type: 'boolean',
      default: false,
    },
  },
  minProperties: 1,
};

type HeaderVal = string | number | Array<string | number>;

interface Runtime {
  uri?: Template;
  /** The query written in `uri` after its first literal `?`, if any. */
  uriQuery?: Template;
  regex?: Array<{ re: RegExp; rep: Array<string | number> }>;
  add: Array<[string, Template[]]>;
  set: Array<[string, Template[]]>;
  remove: string[];
}

export interface ProxyRewriteConf {
  uri?: string;
  method?: string;
  regex_uri?: string[];
  host?: string;
  headers?: { add?: Record<string, HeaderVal>; set?: Record<string, HeaderVal>; remove?: string[] } | Record<string, string | number>;
  use_real_request_uri_unsafe?: boolean;
}

interface ProxyRewriteCompiled extends ProxyRewriteConf {
  readonly rt: Runtime;
}

function isNewHeadersConf(h: Record<string, unknown>): boolean {
  const isObj = (v: unknown) => typeof v === 'object' && v !== null;
  return isObj(h.add) || isObj(h.set) || isObj(h.remove);
}

// RFC 7230 token / field-value, as core.utils.validate_header_field/value.
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;

function check(conf: ProxyRewriteConf): string | undefined {
  const ru = conf.regex_uri;
  if (ru && ru.length > 0) {
    if (ru.length % 2 !== 0) return 'The length of regex_uri should be an even number';
    for (let i = 0; i < ru.length; i += 2) {
      try {
        compilePcre(ru[i] as string);
        compileReplacement(ru[i + 1] as string);
      } catch (e) {
        return `invalid regex_uri(${ru[i]}, ${ru[i + 1]}): ${(e as Error).message}`;
      }
    }
  }
  const h = conf.headers as Record<string, unknown> | undefined;
  if (h && !isNewHeadersConf(h)) {
    for (const [field, value] of Object.entries(h)) {
      if (typeof value !== 'string' && typeof value !== 'number') return 'invalid type as header value';
      if (field.length === 0) return 'invalid field length in header';
      if (!TOKEN_RE.test(field)) return 'invalid field character in header';
      if (!FIELD_VALUE_RE.test(String(value))) return 'invalid value character in header';
    }
  }
  return undefined;
}

function compileHeaderMap(m: Record<string, HeaderVal> | undefined): Array<[string, Template[]]> {
  if (!m) return [];
  return Object.entries(m).map(([k, v]) => [
    k.toLowerCase(),
    (Array.isArray(v) ? v : [v]).map((x) => compileTemplate(String(x), true)),
  ]);
}

function compile(conf: ProxyRewriteConf): ProxyRewriteCompiled {
  const rt: Runtime = { add: [], set: [], remove: [] };
  if (conf.uri !== undefined) {
    // Split at the first `?` written in the conf itself: a `?` inside a variable's
    // value stays part of the path (the proxy percent-encodes it), never a separator.
    const t = compileTemplate(conf.uri);
    const at = t.pieces.findIndex((p) => typeof p === 'string' && p.includes('?'));
    if (at < 0) rt.uri = t;
    else {
      const lit = t.pieces[at] as string;
      const q = lit.indexOf('?');
      rt.uri = fromPieces([...t.pieces.slice(0, at), lit.slice(0, q)]);
      rt.uriQuery = fromPieces([lit.slice(q + 1), ...t.pieces.slice(at + 1)]);
    }
  }
  else if (conf.regex_uri) {
    rt.regex = [];
    for (let i = 0; i + 1 < conf.regex_uri.length; i += 2) {
      rt.regex.push({ re: compilePcre(conf.regex_uri[i] as string), rep: compileReplacement(conf.regex_uri[i + 1] as string) });
    }
  }
  const h = conf.headers as Record<string, unknown> | undefined;
  if (h) {
    if (isNewHeadersConf(h)) {
      const nh = h as { add?: Record<string, HeaderVal>; set?: Record<string, HeaderVal>; remove?: string[] };
      rt.add = compileHeaderMap(nh.add);
      rt.set = compileHeaderMap(nh.set);
      rt.remove = (nh.remove ?? []).map((n) => n.toLowerCase());
    } else {
      rt.set = compileHeaderMap(h as Record<string, HeaderVal>);
    }
  }
  return { ...conf, rt };
}

// Variable values land in the request line: control characters (CR/LF) must never go out raw.
const HAS_CONTROL = /[\x00-\x20\x7f]/;
const CONTROLS = /[\x00-\x20\x7f]/g;
const escapeControls = (s: string): string =>
  HAS_CONTROL.test(s) ? s.replace(CONTROLS, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')) : s;

function fromPieces(pieces: Piece[]): Template {
  const kept = pieces.filter((p) => p !== '');
  if (kept.every((p) => typeof p === 'string')) {
    const text = (kept as string[]).join('');
    return { constant: true, text, pieces: [text] };
  }
  return { constant: false, text: '', pieces: kept };
}

function rewrite(conf: ProxyRewriteCompiled, ctx: RequestContext): PluginExit | void {
  const rt = conf.rt;
  const up = ctx.upstreamRequest;
  let captures: RegExpMatchArray | null = null;

  if (conf.host !== undefined) up.host = conf.host;

  if (rt.uri || rt.regex || conf.use_real_request_uri_unsafe) {
    let path = ctx.path;
    let query = up.query;
    if (conf.use_real_request_uri_unsafe) {
      // The request target as the client sent it, unnormalised: the operator asked for it.
      // Decoded once because the proxy encodes `path` on the way out.
      const raw = ctx.var.get('request_uri') ?? ctx.path;
      const q = raw.indexOf('?');
      path = q < 0 ? raw : raw.slice(0, q);
      try {
        path = decodeURIComponent(path);
      } catch {
        // Keep an undecodable path as sent.
      }
      query = q < 0 ? '' : raw.slice(q + 1);
    }
    let target: string | undefined;
    // A `?` that came from the client's own path (a decoded %3F) is data, not a separator.
    let split = false;
    if (rt.uri) {
      path = renderTemplate(rt.uri, ctx.var);
      if (rt.uriQuery) {
        // A query written in the conf comes first; the client's args follow it.
        const own = renderTemplate(rt.uriQuery, ctx.var, null, escapeControls);
        query = query ? (own ? `${own}&${query}` : query) : own;
      }
    } else if (rt.regex) {
      for (const { re, rep } of rt.regex) {
        const m = path.match(re);
        if (m) {
          captures = m;
          const at = m.index ?? 0;
          target = path.slice(0, at) + applyReplacement(rep, m) + path.slice(at + m[0].length);
          split = !path.includes('?');
          break;
        }
      }
    }
    if (target !== undefined) {
      const q = split ? target.indexOf('?') : -1;
      if (q >= 0) {
        // A query written in the conf comes first; the client's args follow it.
        const own = escapeControls(target.slice(q + 1));
        query = query ? (own ? `${own}&${query}` : query) : own;
        path = target.slice(0, q);
      } else {
        path = target;
      }
    }
    if (path !== up.path) up.path = path;
    if (query !== up.query) up.query = query;
  }

  if (rt.add.length || rt.set.length || rt.remove.length) {
    const headers = up.headers;
    for (const [name, values] of rt.add) {
      for (const t of values) headers.add(name, renderTemplate(t, ctx.var, captures));
    }
    for (const [name, values] of rt.set) {
      headers.set(name, renderTemplate(values[0] as Template, ctx.var, captures));
      for (let i = 1; i < values.length; i++) headers.add(name, renderTemplate(values[i] as Template, ctx.var, captures));
    }
    for (const name of rt.remove) headers.remove(name);
  }

  if (conf.method !== undefined) up.method = conf.method;
}

export default definePlugin({
  name: 'proxy-rewrite',
  priority: 1008,
  version: '0.1',
  schema,
  check,
  compile,
  rewrite,
});
