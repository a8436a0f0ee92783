/**
 * APISIX's log entry (apisix/utils/log-util.lua: get_full_log,
 * get_custom_format_log, get_log_entry) and the phase work every logger does
 * for it: keep the bodies in access (check_and_read_req_body, collect_body),
 * mark the upstream attempt in before_proxy, build the entry in the log phase.
 */
import { hostname } from 'node:os';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { dataKey, decodeQueryComponent, headerPairsObject, type RequestContext, type Vars } from '../../core/plugin/index.js';
import type { CompiledLog, LogConf, LogMetadata } from './log-conf.js';
import { compileLogFormat, renderLogFormat, type CompiledFormat } from './log-format.js';

/** `performance.now()` when before_proxy ran: the upstream attempt started. */
const UPSTREAM_START = dataKey<number>('log-upstream-start');

let serverInfo: { hostname: string; version: string } = { hostname: hostname(), version: '' };

/** The entries' `server` member. */
export function serverOf(): Readonly<{ hostname: string; version: string }> {
  return serverInfo;
}

/** From a logger's init(): the version the entries' `server.version` reports. */
export function setServerVersion(version: string): void {
  serverInfo = { hostname: serverInfo.hostname, version };
}

/** access: keep the bodies the conf asks for (the request body only when its expression matches now). */
export function keepBodies(conf: LogConf, compiled: CompiledLog, ctx: RequestContext): void {
  if (conf.include_req_body && (compiled.reqBodyWhen === undefined || compiled.reqBodyWhen(ctx.var))) ctx.keepRequestBody(conf.max_req_body_bytes);
  // The response expression may read the response (status, headers): it is judged in the log phase.
  if (conf.include_resp_body) ctx.keepResponseBody(conf.max_resp_body_bytes);
}

/** before_proxy: the upstream attempt starts now (upstream_latency). */
export function markUpstream(ctx: RequestContext): void {
  ctx.setData(UPSTREAM_START, performance.now());
}

export interface Latency {
  latency: number;
  upstream: number | undefined;
  apisix: number;
  startMs: number;
}

/**
 * Milliseconds kept to the microsecond: APISIX's come from ngx.now(), which
 * ticks in milliseconds, so finer digits would be noise, and 17-digit doubles
 * cost the JSON encoder several times what 3 decimals do.
 */
export function micros(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

export function latencyOf(ctx: RequestContext): Latency {
  const now = performance.now();
  const started = ctx.measures?.startedAt ?? now;
  const latency = now - started;
  const upStart = ctx.getData(UPSTREAM_START);
  const upstream = upStart === undefined ? undefined : now - upStart;
  const apisix = upstream === undefined ? latency : Math.max(0, latency - upstream);
  return { latency, upstream, apisix, startMs: Date.now() - latency };
}

/**
 * ctx.var plus the nginx variables a log line wants that only exist once the
 * response is done: `status`, `request_time`, `upstream_response_time`,
 * `request_length`, `bytes_sent`, `upstream_status`.
 */
class LogVars implements Vars {
  private lat: Latency | undefined;
  constructor(private readonly ctx: RequestContext) {}

  private latency(): Latency {
    return (this.lat ??= latencyOf(this.ctx));
  }

  get(name: string): string | undefined {
    const ctx = this.ctx;
    switch (name) {
      case 'status':
        return String(ctx.responseStatus);
      case 'upstream_status':
        return ctx.target === undefined ? undefined : String(ctx.responseStatus);
      case 'request_time':
        return (this.latency().latency / 1000).toFixed(3);
      case 'upstream_response_time': {
        const up = this.latency().upstream;
        return up === undefined ? undefined : (up / 1000).toFixed(3);
      }
      case 'request_length':
        return ctx.measures === undefined ? undefined : String(ctx.measures.bytesRead);
      case 'bytes_sent':
        return ctx.measures === undefined ? undefined : String(ctx.measures.bytesWritten);
      default:
        return ctx.var.get(name);
    }
  }
}

/** The variables a log-phase rule (file-logger's `match`, include_resp_body_expr) reads. */
export function logVars(ctx: RequestContext): Vars {
  return new LogVars(ctx);
}

/** ngx.req.get_uri_args(): repeated names become arrays, a bare name is `true`. */
export function queryObject(query: string): Record<string, string | boolean | Array<string | boolean>> {
  const out: Record<string, string | boolean | Array<string | boolean>> = {};
  if (query === '') return out;
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decodeQueryComponent(eq < 0 ? part : part.slice(0, eq));
    const value: string | boolean = eq < 0 ? true : decodeQueryComponent(part.slice(eq + 1));
    const prior = out[key];
    out[key] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  return out;
}

function bodyText(b: Buffer | undefined): string | undefined {
  return b === undefined ? undefined : b.toString('utf8');
}

/** collect_body: a compressed response is logged decoded, as APISIX's content-decode does; a body that does not decode is logged as is. */
export function responseBodyText(ctx: RequestContext, max: number): string | undefined {
  const body = ctx.responseBody;
  if (body === undefined) return undefined;
  const encoding = ctx.response.headers.get('content-encoding')?.trim().toLowerCase();
  if (encoding === undefined || encoding === '' || encoding === 'identity') return body.toString('utf8');
  const opts = { maxOutputLength: Math.max(max, 1) };
  try {
    if (encoding === 'gzip') return gunzipSync(body, opts).toString('utf8');
    if (encoding === 'deflate') return inflateSync(body, opts).toString('utf8');
    if (encoding === 'br') return brotliDecompressSync(body, opts).toString('utf8');
  } catch {
    // Cut at the byte limit, or not what its header says: keep the bytes.
  }
  return body.toString('utf8');
}

/**
 * get_full_log without its timing fields (start_time, latency,
 * upstream_latency, apisix_latency), which come last (withTiming()).
 * log-json.ts's writeFullLog writes these same members, in this order,
 * straight as bytes (http-logger, file-logger): a change here is a change
 * there, and t/plugins/loggers/log-json.test.ts holds the two texts equal.
 */
function fullLogHead(conf: LogConf, compiled: CompiledLog, ctx: RequestContext, vars: Vars): Record<string, unknown> {
  const v = ctx.var;
  const route = ctx.route;
  const matched = route.id !== '';
  const request: Record<string, unknown> = {
    url: `${v.get('scheme')}://${v.get('host')}:${v.get('server_port')}${v.get('request_uri')}`,
    uri: v.get('request_uri'),
    method: ctx.method,
    headers: ctx.requestHeaders(),
    querystring: queryObject(ctx.query),
    size: ctx.measures === undefined ? undefined : ctx.measures.bytesRead,
  };
  const sent = ctx.sentHeaders;
  const response: Record<string, unknown> = {
    status: ctx.responseStatus,
    // As the client got them (ngx.resp.get_headers()); the upstream's when no head went out.
    headers: sent === undefined ? ctx.response.headers.toObject() : headerPairsObject(sent),
    size: ctx.measures === undefined ? undefined : ctx.measures.bytesWritten,
  };
  if (conf.include_resp_body && (compiled.respBodyWhen === undefined || compiled.respBodyWhen(vars))) {
    const body = responseBodyText(ctx, conf.max_resp_body_bytes);
    if (body !== undefined) response.body = body;
  }
  if (conf.include_req_body && ctx.requestBody !== undefined) request.body = bodyText(ctx.requestBody);
  return {
    request,
    response,
    server: serverInfo,
    upstream: ctx.target?.key,
    service_id: matched ? (route.service_id === undefined ? '' : String(route.service_id)) : ctx.host,
    route_id: matched ? route.id : undefined,
    consumer: ctx.consumer === undefined ? undefined : { username: ctx.consumer.username },
    client_ip: ctx.remoteAddr,
  };
}

function withTiming(entry: Record<string, unknown>, lat: Latency): Record<string, unknown> {
  entry.start_time = Math.round(lat.startMs);
  entry.latency = micros(lat.latency);
  entry.upstream_latency = lat.upstream === undefined ? undefined : micros(lat.upstream);
  entry.apisix_latency = micros(lat.apisix);
  return entry;
}

const metadataFormats = new WeakMap<object, CompiledFormat>();

/** A plugin_metadata log_format, compiled once per metadata object (a config change makes a new one). */
function metadataFormat(meta: LogMetadata, which: 'log_format' | 'log_format_extra'): CompiledFormat | undefined {
  const raw = meta[which];
  if (raw === undefined || Object.keys(raw).length === 0) return undefined;
  let f = metadataFormats.get(raw);
  if (f === undefined) {
    f = compileLogFormat(raw);
    metadataFormats.set(raw, f);
  }
  return f;
}

/**
 * get_log_entry when the entry is not the plain full entry: the conf's
 * log_format, else the metadata's, else the full entry enriched with
 * log_format_extra (the conf's, else the metadata's) for keys it does not
 * already have. Undefined when neither applies: the caller builds the full
 * entry as it needs it (logEntry() as an object, log-json.ts as bytes).
 */
export function customLogEntry(plugin: string, conf: LogConf, compiled: CompiledLog, ctx: RequestContext): Record<string, unknown> | undefined {
  const meta = ctx.pluginMetadata<LogMetadata>(plugin);
  const format = compiled.format ?? (meta === undefined ? undefined : metadataFormat(meta, 'log_format'));
  // compiled.extra is there exactly when the conf has log_format_extra.
  const extra = format !== undefined ? undefined : (compiled.extra ?? (meta === undefined ? undefined : metadataFormat(meta, 'log_format_extra')));
  if (format === undefined && extra === undefined) return undefined;
  const vars = new LogVars(ctx);
  const reqBody = (): string | undefined => bodyText(ctx.requestBody);
  if (format !== undefined) {
    const entry = renderLogFormat(format, vars, reqBody);
    if (ctx.route.id !== '') {
      entry.route_id = ctx.route.id;
      entry.service_id = ctx.route.service_id === undefined ? undefined : String(ctx.route.service_id);
    }
    return entry;
  }
  const entry = withTiming(fullLogHead(conf, compiled, ctx, vars), latencyOf(ctx));
  const more = renderLogFormat(extra!, vars, reqBody);
  for (const key of Object.keys(more)) if (entry[key] === undefined) entry[key] = more[key];
  return entry;
}

/** get_log_entry: customLogEntry(), else the full entry. */
export function logEntry(plugin: string, conf: LogConf, compiled: CompiledLog, ctx: RequestContext): Record<string, unknown> {
  return customLogEntry(plugin, conf, compiled, ctx) ?? withTiming(fullLogHead(conf, compiled, ctx, new LogVars(ctx)), latencyOf(ctx));
}

/**
 * kafka-logger's `meta_format: origin` (log-util's get_req_original): the
 * request as it came, request line, headers and (with include_req_body) body.
 */
export function originalRequest(conf: LogConf, ctx: RequestContext): string {
  let out = `${ctx.var.get('request_line') ?? ''}\r\n`;
  for (const [name, value] of Object.entries(ctx.requestHeaders())) {
    if (value === undefined) continue;
    out += `${name}: ${Array.isArray(value) ? value.join(', ') : value}\r\n`;
  }
  out += '\r\n';
  if (conf.include_req_body && ctx.requestBody !== undefined) out += ctx.requestBody.toString('utf8');
  return out;
}
