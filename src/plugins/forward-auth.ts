/**
 * forward-auth (APISIX priority 2002, access phase): asks an external service
 * whether the request may pass (apisix/plugins/forward-auth.lua). The
 * authorization request is built fresh for each client request: the
 * gateway's X-Forwarded-Proto/-Method/-Host/-Uri/-For, the client headers the
 * conf lists (never framing or X-Forwarded-*: see forward-auth/auth-headers.ts),
 * extra_headers with variables, and with request_method POST the client's
 * body, re-framed. A 2xx answer lets the request through, copying
 * upstream_headers from the answer (and clearing them when the answer has
 * none, so a client cannot supply them: APISIX's CVE-2026-31908); any other
 * answer goes back to the client with its status, body and client_headers.
 * The service unreachable or slower than `timeout` is status_on_error, or a
 * pass with allow_degradation.
 */
import { Agent, request, type Dispatcher } from 'undici';
import { compileTemplate, definePlugin, renderTemplate, type PluginExit, type RequestContext, type Template } from '../core/plugin/index.js';
import { clientHeaderRefusal, extraHeaderRefusal, isHeaderValue } from './forward-auth/auth-headers.js';

export const schema = {
  type: 'object',
  properties: {
    uri: { type: 'string' },
    allow_degradation: { type: 'boolean', default: false },
    status_on_error: { type: 'integer', minimum: 200, maximum: 599, default: 403 },
    ssl_verify: { type: 'boolean', default: true },
    request_method: { type: 'string', default: 'GET', enum: ['GET', 'POST'] },
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    request_headers: { type: 'array', default: [], items: { type: 'string' } },
    extra_headers: { type: 'object', minProperties: 1, patternProperties: { '^[^:]+$': { type: 'string' } } },
    upstream_headers: { type: 'array', default: [], items: { type: 'string' } },
    client_headers: { type: 'array', default: [], items: { type: 'string' } },
    timeout: { type: 'integer', minimum: 1, maximum: 60000, default: 3000 },
    keepalive: { type: 'boolean', default: true },
    keepalive_timeout: { type: 'integer', minimum: 1000, default: 60000 },
    keepalive_pool: { type: 'integer', minimum: 1, default: 5 },
  },
  required: ['uri'],
};

export interface ForwardAuthConf {
  uri: string;
  allow_degradation: boolean;
  status_on_error: number;
  ssl_verify: boolean;
  request_method: 'GET' | 'POST';
  max_req_body_size: number;
  request_headers: string[];
  extra_headers?: Record<string, string>;
  upstream_headers: string[];
  client_headers: string[];
  timeout: number;
  keepalive: boolean;
  keepalive_timeout: number;
  keepalive_pool: number;
}

interface Compiled {
  readonly conf: ForwardAuthConf;
  readonly url: URL;
  readonly agent: Agent;
  /** request_headers lower-cased, in order. */
  readonly copy: readonly string[];
  readonly extra: ReadonlyArray<readonly [string, Template]>;
  readonly upstream: readonly string[];
  readonly client: readonly string[];
  readonly onError: PluginExit;
}

function check(conf: ForwardAuthConf): string | undefined {
  let url: URL;
  try {
    url = new URL(conf.uri);
  } catch {
    return `invalid uri: "${conf.uri}"`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `invalid uri: "${conf.uri}" is neither http nor https`;
  for (const h of conf.request_headers) {
    const why = clientHeaderRefusal(h);
    if (why !== undefined) return `request_headers: ${why}`;
  }
  for (const h of Object.keys(conf.extra_headers ?? {})) {
    const why = extraHeaderRefusal(h);
    if (why !== undefined) return `extra_headers: ${why}`;
  }
  return undefined;
}

/**
 * Connection pools by their settings, shared by every conf that has the same
 * ones (APISIX's keepalive pools are per worker too), so a config change does
 * not leave a pool behind per old conf.
 */
const agents = new Map<string, Agent>();

function agentFor(conf: ForwardAuthConf): Agent {
  const key = `${conf.ssl_verify}|${conf.keepalive_timeout}|${conf.keepalive_pool}`;
  let agent = agents.get(key);
  if (agent === undefined) {
    agent = new Agent({
      connections: conf.keepalive_pool,
      keepAliveTimeout: conf.keepalive_timeout,
      keepAliveMaxTimeout: conf.keepalive_timeout,
      connect: { rejectUnauthorized: conf.ssl_verify },
    });
    agents.set(key, agent);
  }
  return agent;
}

function compile(conf: ForwardAuthConf): Compiled {
  const err = check(conf);
  if (err !== undefined) throw new Error(err);
  return {
    conf,
    url: new URL(conf.uri),
    agent: agentFor(conf),
    copy: conf.request_headers.map((h) => h.toLowerCase()),
    extra: Object.entries(conf.extra_headers ?? {}).map(([name, value]) => [name.toLowerCase(), compileTemplate(value)] as const),
    upstream: conf.upstream_headers.map((h) => h.toLowerCase()),
    client: conf.client_headers.map((h) => h.toLowerCase()),
    onError: Object.freeze({ status: conf.status_on_error }),
  };
}

function authHeaders(c: Compiled, ctx: RequestContext): Record<string, string> {
  const v = ctx.var;
  const h: Record<string, string> = {
    'x-forwarded-proto': v.get('scheme') ?? 'http',
    'x-forwarded-method': ctx.method,
    'x-forwarded-host': ctx.host,
    'x-forwarded-uri': v.get('request_uri') ?? ctx.path,
    'x-forwarded-for': v.get('remote_addr') ?? ctx.remoteAddr,
  };
  if (c.conf.request_method === 'POST') {
    const enc = ctx.requestHeader('content-encoding');
    if (enc !== undefined) h['content-encoding'] = enc;
  }
  for (const [name, tpl] of c.extra) {
    const value = renderTemplate(tpl, v);
    // A variable may carry what a client sent; a value no header line can hold is left out, never sent broken.
    if (isHeaderValue(value)) h[name] = value;
  }
  for (const name of c.copy) {
    if (name in h) continue;
    const value = ctx.requestHeader(name);
    if (value !== undefined) h[name] = value;
  }
  return h;
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

async function access(c: Compiled, ctx: RequestContext): Promise<PluginExit | void> {
  const conf = c.conf;
  const headers = authHeaders(c, ctx);
  let body: Buffer | undefined;
  if (conf.request_method === 'POST') {
    const read = await ctx.readBody(conf.max_req_body_size);
    if (!Buffer.isBuffer(read)) return { status: 413 };
    body = read;
  }
  let res: Dispatcher.ResponseData;
  let resBody: Buffer;
  try {
    res = await request(c.url, {
      method: conf.request_method,
      headers,
      body,
      dispatcher: c.agent,
      // Without keepalive the connection closes after this exchange.
      reset: !conf.keepalive,
      signal: AbortSignal.timeout(conf.timeout),
      headersTimeout: conf.timeout,
      bodyTimeout: conf.timeout,
    });
    resBody = Buffer.from(await res.body.arrayBuffer());
  } catch {
    return conf.allow_degradation ? undefined : c.onError;
  }
  if (res.statusCode >= 300) {
    const out: Record<string, string> = {};
    for (const name of c.client) {
      const value = single(res.headers[name]);
      if (value !== undefined) out[name] = value;
    }
    return { status: res.statusCode, body: resBody, headers: out };
  }
  const up = ctx.upstreamRequest.headers;
  for (const name of c.upstream) {
    const value = res.headers[name];
    // Absent from the answer: the client's own value must not reach the upstream posing as the service's.
    if (value === undefined) up.remove(name);
    else if (Array.isArray(value)) {
      up.remove(name);
      for (const v of value) up.add(name, v);
    } else up.set(name, value);
  }
}

/** The pools close with the gateway, so no socket to the service outlives it. */
function init(): () => Promise<void> {
  return async () => {
    const all = [...agents.values()];
    agents.clear();
    await Promise.all(all.map((a) => a.close()));
  };
}

export default definePlugin({
  name: 'forward-auth',
  priority: 2002,
  version: '0.1',
  schema,
  check,
  compile,
  access,
  init,
});
