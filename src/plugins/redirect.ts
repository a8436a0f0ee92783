/**
 * redirect (APISIX priority 900): answers with a redirect in the rewrite
 * phase (apisix/plugins/redirect.lua): to `uri` (with `$var` / `${var}`), to
 * `regex_uri`'s substitution of the path (no match: the request goes on), or,
 * with `http_to_https`, to the same request on HTTPS (301 for GET/HEAD, 308
 * otherwise, so a body is re-sent).
 *
 * The HTTPS port is plugin_attr.redirect.https_port, else the first port of
 * apisix.ssl.listen when apisix.ssl is on (APISIX picks one of them at
 * random; one stable answer is kinder to caches), else none (443). Like
 * APISIX, a client's X-Forwarded-Proto counts as the request's scheme.
 *
 * Variable values are written into the Location header with control
 * characters percent-encoded: a decoded `%0d%0a` in `$uri` cannot split the
 * response.
 */
import {
  applyReplacement,
  compilePcre,
  compileReplacement,
  definePlugin,
  renderTemplate,
  type Piece,
  type PluginExit,
  type PluginInitContext,
  type RequestContext,
  type Template,
} from '../core/plugin/index.js';
import { escapeControlChars } from './lib/control-chars.js';

// APISIX's own segment grammar for `uri`: \$name (kept as written), ${name}, $name, and everything else.
const SEGMENTS = '(\\\\\\$[0-9a-zA-Z_]+)|\\$\\{([0-9a-zA-Z_]+)\\}|\\$([0-9a-zA-Z_]+)|(\\$|[^$\\\\]+)';

export const schema = {
  type: 'object',
  properties: {
    ret_code: { type: 'integer', minimum: 200, default: 302 },
    uri: { type: 'string', minLength: 2, pattern: SEGMENTS },
    regex_uri: {
      description: 'params for generating new uri that substitute from client uri, first param is regular expression, the second one is uri template',
      type: 'array',
      maxItems: 2,
      minItems: 2,
      items: { description: 'regex uri', type: 'string' },
    },
    http_to_https: { type: 'boolean' },
    encode_uri: { type: 'boolean', default: false },
    append_query_string: { type: 'boolean', default: false },
  },
  oneOf: [{ required: ['uri'] }, { required: ['regex_uri'] }, { required: ['http_to_https'] }],
};

export interface RedirectConf {
  ret_code?: number;
  uri?: string;
  regex_uri?: [string, string];
  http_to_https?: boolean;
  encode_uri?: boolean;
  append_query_string?: boolean;
}

interface RedirectCompiled extends RedirectConf {
  readonly template: Template | undefined;
  readonly regex: { readonly re: RegExp; readonly rep: Array<string | number> } | undefined;
}


/** APISIX's get_port, with the first listener instead of a random one. */
export function redirectPort(attr: Readonly<Record<string, unknown>>, httpsPorts: readonly number[]): number | undefined {
  const port = typeof attr.https_port === 'number' ? attr.https_port : httpsPorts[0];
  // As APISIX: 443, 0 (an ephemeral listener) or nonsense write no port.
  return port === undefined || port === 443 || port <= 0 || port > 65535 ? undefined : port;
}

function init(ctx: PluginInitContext): void {
  const attr = ctx.attr;
  const p = attr.https_port;
  if (p !== undefined && (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535)) {
    throw new Error(`plugin_attr.redirect.https_port: expected an integer port between 1 and 65535, got ${JSON.stringify(p)}`);
  }
  for (const key of Object.keys(attr)) {
    if (key !== 'https_port') throw new Error(`plugin_attr.redirect.${key}: unknown field (only https_port is read)`);
  }
  toHttps = httpsTemplate(redirectPort(attr, ctx.httpsPorts));
}

/** Parses `uri` as APISIX's parse_uri does: a `\` not followed by `$name` is dropped, an unknown variable is empty. */
function parseUri(uri: string): Template {
  const pieces: Piece[] = [];
  for (const m of uri.matchAll(new RegExp(SEGMENTS, 'g'))) {
    const name = m[2] ?? m[3];
    pieces.push(name !== undefined ? { v: name } : (m[1] ?? m[4])!);
  }
  return { constant: false, text: uri, pieces };
}

function check(conf: RedirectConf): string | undefined {
  if (conf.regex_uri) {
    const [pattern, replacement] = conf.regex_uri;
    try {
      compilePcre(pattern);
      compileReplacement(replacement);
    } catch (e) {
      return `invalid regex_uri (${pattern}, ${replacement}), err:${(e as Error).message}`;
    }
  }
  if (conf.http_to_https && conf.append_query_string) return 'only one of `http_to_https` and `append_query_string` can be configured.';
  return undefined;
}

function compile(conf: RedirectConf): RedirectCompiled {
  return {
    ...conf,
    template: conf.uri === undefined ? undefined : parseUri(conf.uri),
    regex: conf.regex_uri === undefined ? undefined : { re: compilePcre(conf.regex_uri[0]), rep: compileReplacement(conf.regex_uri[1]) },
  };
}

/** nginx's ngx_escape_uri(NGX_ESCAPE_URI), which APISIX's uri_safe_encode calls: controls, space, #, %, ?, and non-ASCII. */
function escapeUri(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b <= 0x20 || b === 0x23 || b === 0x25 || b === 0x3f || b >= 0x7f ? '%' + b.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(b);
  }
  return out;
}

function httpsTemplate(port: number | undefined): Template {
  return parseUri(port === undefined ? 'https://$host$request_uri' : `https://$host:${port}$request_uri`);
}
/** Where http_to_https sends clients, with the port init() found; per process. */
let toHttps = httpsTemplate(undefined);

function rewrite(conf: RedirectCompiled, ctx: RequestContext): PluginExit | void {
  let retCode = conf.ret_code ?? 302;
  let template = conf.template;
  if (conf.http_to_https) {
    const scheme = ctx.requestHeader('x-forwarded-proto') ?? ctx.var.get('scheme');
    if (scheme !== 'https') {
      template = toHttps;
      retCode = ctx.method === 'GET' || ctx.method === 'HEAD' ? 301 : 308;
    }
  }
  let location: string;
  if (template !== undefined) {
    location = renderTemplate(template, ctx.var, null, escapeControlChars);
  } else if (conf.regex !== undefined) {
    const path = ctx.path;
    const m = path.match(conf.regex.re);
    if (m === null) return;
    const at = m.index ?? 0;
    location = escapeControlChars(path.slice(0, at) + applyReplacement(conf.regex.rep, m) + path.slice(at + m[0].length));
  } else {
    return;
  }
  const q = location.indexOf('?');
  if (conf.encode_uri) location = q < 0 ? escapeUri(location) : escapeUri(location.slice(0, q)) + location.slice(q);
  if (conf.append_query_string && ctx.query !== '') location += (q < 0 ? '?' : '&') + ctx.query;
  return { status: retCode, headers: { Location: location } };
}

export default definePlugin({
  name: 'redirect',
  priority: 900,
  version: '0.1',
  schema,
  check,
  compile,
  init,
  rewrite,
});
