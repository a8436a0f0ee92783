/**
 * response-rewrite (APISIX priority 899): changes the client's response —
 * status, headers, and the body (a fixed `body`, or regex `filters` over the
 * upstream body) — optionally only when `vars` match
 * (apisix/plugins/response-rewrite.lua).
 *
 * header_filter decides once per response whether the rewrite applies and
 * drops the headers a new body invalidates (Content-Length, Content-Encoding,
 * ETag, Last-Modified); body_filter then swallows the upstream's chunks and
 * emits the replacement at end of stream.
 */
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import {
  applyReplacement,
  compileExpr,
  compilePcre,
  compileReplacement,
  compileTemplate,
  dataKey,
  definePlugin,
  renderTemplate,
  type CompiledExpr,
  type RequestContext,
  type Template,
} from '../core/plugin/index.js';
import { ResponseVars } from './lib/response-vars.js';

const headerValue = { oneOf: [{ type: 'string' }, { type: 'number' }] };

export const schema = {
  type: 'object',
  properties: {
    max_resp_body_size: {
      type: 'integer',
      minimum: 1,
      default: 67108864,
      description: 'maximum response body size in bytes buffered into memory when filters are applied; larger responses are truncated',
    },
    headers: {
      description: 'new headers for response',
      anyOf: [
        { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } },
        {
          properties: {
            // "Set-Cookie: <cookie-name>=<cookie-value>; Max-Age=<number>"
            add: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+:[^:]*[^/]$' } },
            set: { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': headerValue } },
            remove: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
          },
        },
      ],
    },
    body: { description: 'new body for response', type: 'string' },
    body_base64: { description: 'whether new body for response need base64 decode before return', type: 'boolean', default: false },
    status_code: { description: 'new status code for response', type: 'integer', minimum: 200, maximum: 598 },
    vars: { type: 'array' },
    filters: {
      description: 'a group of filters that modify response body by replacing one specified string by another',
      type: 'array',
      minItems: 1,
      items: {
        description: 'filter that modifies response body',
        type: 'object',
        required: ['regex', 'replace'],
        properties: {
          regex: { description: 'match pattern on response body', type: 'string', minLength: 1 },
          scope: { description: 'regex substitution range', type: 'string', enum: ['once', 'global'], default: 'once' },
          replace: { description: 'regex substitution content', type: 'string' },
          options: { description: 'regex options', type: 'string', default: 'jo' },
        },
      },
    },
  },
  dependencies: {
    body: { not: { required: ['filters'] } },
    filters: { not: { required: ['body'] } },
  },
};

interface Filter {
  regex: string;
  replace: string;
  scope?: 'once' | 'global';
  options?: string;
}

interface Runtime {
  match?: CompiledExpr;
  body?: Buffer;
  filters?: Array<{ re: RegExp; rep: Array<string | number> }>;
  add: Array<[string, Template]>;
  set: Array<[string, Template]>;
  remove: string[];
}

export interface ResponseRewriteConf {
  max_resp_body_size?: number;
  headers?: { add?: string[]; set?: Record<string, string | number>; remove?: string[] } | Record<string, string | number>;
  body?: string;
  body_base64?: boolean;
  status_code?: number;
  vars?: unknown[];
  filters?: Filter[];
}

interface ResponseRewriteCompiled extends ResponseRewriteConf {
  readonly rt: Runtime;
}

/** Set by header_filter when `vars` matched: body_filter rewrites only then. */
const MATCHED = dataKey<Runtime>('response_rewrite_matched');
const HELD = dataKey<Buffer[]>('response_rewrite_body');
const HELD_SIZE = dataKey<number>('response_rewrite_body_size');
/** The upstream's Content-Encoding, removed from the response but needed to read the body. */
const ENCODING = dataKey<string | undefined>('response_rewrite_encoding');
const EMPTY = Buffer.alloc(0);

function isNewHeadersConf(h: Record<string, unknown>): boolean {
  const isObj = (v: unknown) => typeof v === 'object' && v !== null;
  return isObj(h.add) || isObj(h.set) || isObj(h.remove);
}

/** PCRE options as ngx.re takes them; j and o (JIT, compile once) mean nothing here. */
function regexFlags(options: string | undefined, global: boolean): string {
  let flags = global ? 'g' : '';
  for (const o of options ?? 'jo') {
    if ((o === 'i' || o === 'm' || o === 's') && !flags.includes(o)) flags += o;
    else if (o === 'u' && !flags.includes('u')) flags += 'u';
  }
  return flags;
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

function check(conf: ResponseRewriteConf): string | undefined {
  const h = conf.headers as Record<string, unknown> | undefined;
  if (h && !isNewHeadersConf(h)) {
    for (const [field, value] of Object.entries(h)) {
      if (typeof value !== 'string' && typeof value !== 'number') return 'invalid type as header value';
      if (field.length === 0) return 'invalid field length in header';
    }
  }
  if (conf.body_base64) {
    const b = conf.body?.replace(/\s+/g, '');
    if (!b || b.length % 4 === 1 || !BASE64_RE.test(b)) return 'invalid base64 content';
  }
  if (conf.vars) {
    try {
      compileExpr(conf.vars);
    } catch (e) {
      return `failed to validate the 'vars' expression: ${(e as Error).message}`;
    }
  }
  for (const f of conf.filters ?? []) {
    try {
      compilePcre(f.regex, regexFlags(f.options, false));
      compileReplacement(f.replace);
    } catch (e) {
      return `regex "${f.regex}" validation failed: ${(e as Error).message}`;
    }
  }
  return undefined;
}

function compile(conf: ResponseRewriteConf): ResponseRewriteCompiled {
  const rt: Runtime = { add: [], set: [], remove: [] };
  if (conf.vars) rt.match = compileExpr(conf.vars);
  if (conf.body !== undefined) rt.body = Buffer.from(conf.body, conf.body_base64 ? 'base64' : 'utf8');
  if (conf.filters) {
    rt.filters = conf.filters.map((f) => ({
      re: compilePcre(f.regex, regexFlags(f.options, f.scope === 'global')),
      rep: compileReplacement(f.replace),
    }));
  }
  const h = conf.headers as Record<string, unknown> | undefined;
  if (h) {
    if (isNewHeadersConf(h)) {
      const nh = h as { add?: string[]; set?: Record<string, string | number>; remove?: string[] };
      for (const line of nh.add ?? []) {
        const m = /^([^:\s]+)\s*:\s*([^:]+)$/.exec(line);
        if (m) rt.add.push([(m[1] as string).toLowerCase(), compileTemplate(m[2] as string)]);
      }
      for (const [k, v] of Object.entries(nh.set ?? {})) rt.set.push([k.toLowerCase(), compileTemplate(String(v))]);
      rt.remove = (nh.remove ?? []).map((n) => n.toLowerCase());
    } else {
      for (const [k, v] of Object.entries(h)) rt.set.push([k.toLowerCase(), compileTemplate(String(v))]);
    }
  }
  return { ...conf, rt };
}

/** `vars` here see the response too (status, upstream_http_*, sent_http_*). */
const responseVars = new ResponseVars();

function header_filter(conf: ResponseRewriteCompiled, ctx: RequestContext): void {
  const rt = conf.rt;
  if (rt.match) {
    responseVars.ctx = ctx;
    const ok = rt.match(responseVars);
    responseVars.ctx = undefined;
    if (!ok) return;
  }
  ctx.setData(MATCHED, rt);

  const res = ctx.response;
  if (conf.status_code !== undefined) res.status = conf.status_code;
  const headers = res.headers;
  if (rt.body || rt.filters) {
    if (rt.filters) ctx.setData(ENCODING, headers.get('content-encoding'));
    headers.remove('content-length');
    headers.remove('content-encoding');
    headers.remove('last-modified');
    headers.remove('etag');
  }
  for (const [name, t] of rt.add) headers.add(name, renderTemplate(t, ctx.var));
  for (const [name, t] of rt.set) headers.set(name, renderTemplate(t, ctx.var));
  for (const name of rt.remove) headers.remove(name);
}

function decode(body: Buffer, encoding: string | undefined): Buffer | undefined {
  if (!encoding || encoding === 'identity') return body;
  try {
    if (encoding === 'gzip' || encoding === 'x-gzip') return gunzipSync(body);
    if (encoding === 'deflate') return inflateSync(body);
    if (encoding === 'br') return brotliDecompressSync(body);
  } catch {
    return undefined;
  }
  return undefined;
}

function body_filter(conf: ResponseRewriteCompiled, ctx: RequestContext, chunk: Buffer, eof: boolean): Buffer | void {
  const rt = ctx.getData(MATCHED);
  if (rt === undefined) return;

  if (rt.filters) {
    // Hold the body (up to max_resp_body_size; the rest is cut, as APISIX does) and filter it at the end.
    let held = ctx.getData(HELD);
    if (held === undefined) ctx.setData(HELD, (held = []));
    const max = conf.max_resp_body_size ?? 67108864;
    const size = ctx.getData(HELD_SIZE) ?? 0;
    if (chunk.length > 0 && size < max) {
      const part = size + chunk.length > max ? chunk.subarray(0, max - size) : chunk;
      held.push(part);
      ctx.setData(HELD_SIZE, size + part.length);
    }
    if (!eof) return EMPTY;
    const raw = Buffer.concat(held);
    const decoded = decode(raw, ctx.getData(ENCODING));
    // An encoding we cannot read is passed on untouched (APISIX logs and gives up too).
    if (decoded === undefined) return raw;
    let text = decoded.toString('utf8');
    for (const f of rt.filters) text = text.replace(f.re, (...args: unknown[]) => applyReplacement(f.rep, groupsOf(args)));
    return Buffer.from(text, 'utf8');
  }

  if (rt.body) return eof ? rt.body : EMPTY;
}

/** String.replace hands a replacer (match, p1..pn, offset, string[, groups]); keep match and groups. */
function groupsOf(args: unknown[]): string[] {
  let end = args.length;
  if (typeof args[end - 1] === 'object') end--; // named groups
  return args.slice(0, end - 2).map((a) => (a === undefined ? '' : String(a)));
}

export default definePlugin({
  name: 'response-rewrite',
  priority: 899,
  version: '0.1',
  schema,
  check,
  compile,
  header_filter,
  body_filter,
});
