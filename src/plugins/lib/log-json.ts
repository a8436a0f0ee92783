/**
 * A log entry as JSON text, for the loggers that send text: exactly
 * JSON.stringify(logEntry(...)), key for key
 * (t/plugins/loggers/log-json.test.ts holds them side by side). The entry
 * is written as UTF-8 bytes at the end of a buffer (writeLogRecord,
 * http-logger's batches; logEntryJson reads them back as a string for
 * file-logger): the full entry member by member from the request, with no
 * entry object, no string and no header objects in between, and its timing
 * numbers digit by digit. Per request that is about 3-4 us less CPU than
 * the object, JSON.stringify and the UTF-8 copy (paired runs of
 * bench/proxy.ts's two routes), about a third of what the logger cost.
 */
import { headerPairsObject, type RequestContext } from '../../core/plugin/index.js';
import type { CompiledLog, LogConf } from './log-conf.js';
import { JsonBuffer } from './json-bytes.js';
import { customLogEntry, latencyOf, logVars, micros, queryObject, responseBodyText, serverOf, type Latency } from './log-entry.js';

/** What http-logger queues: the arguments of get_log_entry, written as JSON when the store takes them (at once). */
export interface LogRecord {
  readonly plugin: string;
  readonly conf: LogConf;
  readonly compiled: CompiledLog;
  readonly ctx: RequestContext;
  readonly routeIdDefault: string | undefined;
}

/** get_log_entry's text, written as UTF-8 bytes at the end of `out` (http-logger's batches). */
export function writeLogRecord(out: JsonBuffer, r: LogRecord): void {
  const custom = customLogEntry(r.plugin, r.conf, r.compiled, r.ctx);
  if (custom === undefined) {
    writeFullLog(out, r.conf, r.compiled, r.ctx, r.routeIdDefault);
    return;
  }
  if (r.routeIdDefault !== undefined) custom.route_id ??= r.routeIdDefault;
  out.object(custom);
}

/** logEntryJson's buffer: the writer is synchronous and never re-entered, so one serves every call. */
const scratch = new JsonBuffer(4096);

/**
 * get_log_entry as JSON text (file-logger), with `routeIdDefault` as the
 * route id of a full entry when no route matched.
 */
export function logEntryJson(plugin: string, conf: LogConf, compiled: CompiledLog, ctx: RequestContext, routeIdDefault?: string): string {
  scratch.at = 0;
  writeLogRecord(scratch, { plugin, conf, compiled, ctx, routeIdDefault });
  return scratch.bytes.toString('utf8', 0, scratch.at);
}

/** The `server` member as JSON bytes, made again when a logger's init() sets a new version. */
let serverJson: { of: object; json: Buffer } | undefined;

/**
 * get_full_log with its timing, written from the request with no entry
 * object in between: fullLogHead()'s members in its order, undefined ones
 * left out as JSON.stringify leaves them.
 */
function writeFullLog(out: JsonBuffer, conf: LogConf, compiled: CompiledLog, ctx: RequestContext, routeIdDefault: string | undefined): void {
  const v = ctx.var;
  const measures = ctx.measures;
  // url: the template literal fullLogHead builds, so a missing part reads "undefined" there too.
  out.ascii('{"request":{"url":"');
  out.chars(v.get('scheme') ?? 'undefined');
  out.ascii('://');
  out.chars(v.get('host') ?? 'undefined');
  out.byte(0x3a);
  out.chars(v.get('server_port') ?? 'undefined');
  const uri = v.get('request_uri');
  out.chars(uri ?? 'undefined');
  out.byte(0x22);
  if (uri !== undefined) {
    out.ascii(',"uri":');
    out.string(uri);
  }
  out.ascii(',"method":');
  out.string(ctx.method);
  out.ascii(',"headers":');
  writeRequestHeaders(out, ctx);
  out.ascii(',"querystring":');
  if (ctx.query === '') out.ascii('{}');
  else out.object(queryObject(ctx.query));
  if (measures !== undefined) {
    out.ascii(',"size":');
    out.number(measures.bytesRead);
  }
  if (conf.include_req_body && ctx.requestBody !== undefined) {
    out.ascii(',"body":');
    out.string(ctx.requestBody.toString('utf8'));
  }
  out.ascii('},"response":{"status":');
  out.number(ctx.responseStatus);
  out.ascii(',"headers":');
  const sent = ctx.sentHeaders;
  if (sent === undefined) out.object(ctx.response.headers.toObject());
  else writeResponseHeaders(out, sent);
  if (measures !== undefined) {
    out.ascii(',"size":');
    out.number(measures.bytesWritten);
  }
  if (conf.include_resp_body && (compiled.respBodyWhen === undefined || compiled.respBodyWhen(logVars(ctx)))) {
    const body = responseBodyText(ctx, conf.max_resp_body_bytes);
    if (body !== undefined) {
      out.ascii(',"body":');
      out.string(body);
    }
  }
  const server = serverOf();
  if (serverJson?.of !== server) serverJson = { of: server, json: Buffer.from(JSON.stringify(server)) };
  out.ascii('},"server":');
  out.raw(serverJson.json);
  const target = ctx.target;
  if (target !== undefined) {
    out.ascii(',"upstream":');
    out.string(target.key);
  }
  const route = ctx.route;
  const matched = route.id !== '';
  const serviceId = matched ? (route.service_id === undefined ? '' : String(route.service_id)) : ctx.host;
  if (serviceId !== undefined) {
    out.ascii(',"service_id":');
    out.string(serviceId);
  }
  const routeId = matched ? route.id : routeIdDefault;
  if (routeId !== undefined) {
    out.ascii(',"route_id":');
    out.string(routeId);
  }
  const consumer = ctx.consumer;
  if (consumer !== undefined) {
    out.ascii(',"consumer":');
    out.object({ username: consumer.username });
  }
  if (ctx.remoteAddr !== undefined) {
    out.ascii(',"client_ip":');
    out.string(ctx.remoteAddr);
  }
  writeTiming(out, latencyOf(ctx));
  out.byte(0x7d);
}

/**
 * The full entry's last four members, each after a comma. They are
 * fractional doubles and a 13-digit start time, whose shortest-form
 * formatting cost JSON.stringify as much as the rest of the entry: here they
 * are written from integers.
 */
function writeTiming(out: JsonBuffer, lat: Latency): void {
  out.ascii(',"start_time":');
  writeEpochMs(out, Math.round(lat.startMs));
  out.ascii(',"latency":');
  writeMicros(out, lat.latency);
  if (lat.upstream !== undefined) {
    out.ascii(',"upstream_latency":');
    writeMicros(out, lat.upstream);
  }
  out.ascii(',"apisix_latency":');
  writeMicros(out, lat.apisix);
}

/** A whole number of milliseconds since the epoch, as JSON.stringify writes it. */
export function writeEpochMs(out: JsonBuffer, ms: number): void {
  if (ms >= 0 && Number.isSafeInteger(ms)) out.uint(ms);
  else out.ascii(JSON.stringify(ms));
}

/**
 * Milliseconds rounded to the microsecond, as JSON.stringify(micros(ms))
 * writes them: below 2^53 microseconds the decimal with its trailing zeros
 * cut is exactly the shortest form JSON.stringify picks.
 */
export function writeMicros(out: JsonBuffer, ms: number): void {
  const us = Math.round(ms * 1000);
  if (!Number.isSafeInteger(us) || us < 0) {
    out.ascii(JSON.stringify(micros(ms)));
    return;
  }
  const whole = Math.floor(us / 1000);
  let frac = us - whole * 1000;
  out.uint(whole);
  if (frac === 0) return;
  out.byte(0x2e);
  // Three digits, trailing zeros cut: 250 -> 25, 5 -> 005.
  let digits = 3;
  while (frac % 10 === 0) {
    frac /= 10;
    digits--;
  }
  for (let p = 10 ** (digits - 1); p >= 1; p /= 10) {
    const d = Math.floor(frac / p);
    out.byte(0x30 + d);
    frac -= d * p;
  }
}

/**
 * The response head as logged (headerPairsObject(flat)) in JSON, from the
 * pairs, when the object would list them as they are (see simplePairs);
 * else from the object.
 */
function writeResponseHeaders(out: JsonBuffer, flat: readonly string[]): void {
  if (simplePairs(flat, false)) writePairs(out, flat);
  else out.object(headerPairsObject(flat));
}

/** The request headers as logged (Node's req.headers) in JSON, the same way: Node builds that object only when read. */
function writeRequestHeaders(out: JsonBuffer, ctx: RequestContext): void {
  const flat = ctx.requestHeaderPairs();
  if (simplePairs(flat, true)) writePairs(out, flat);
  else out.object(ctx.requestHeaders() as Record<string, unknown>);
}

/**
 * Whether an object built from these pairs holds each one as is, in order,
 * under its lower-cased name: no repeated name (it would be joined or become
 * an array), no integer-like name (an object lists those first), and for
 * Node's request object no Set-Cookie (always an array there) and no
 * `__proto__` (a prototype there, not a member).
 */
function simplePairs(flat: readonly string[], nodeRequest: boolean): boolean {
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    const first = name.charCodeAt(0);
    if (first >= 0x30 && first <= 0x39) return false;
    if (nodeRequest && ((name.length === 10 && sameName(name, 'set-cookie')) || (name.length === 9 && sameName(name, '__proto__')))) return false;
    for (let j = 0; j < i; j += 2) if (sameName(flat[j]!, name)) return false;
  }
  return true;
}

function writePairs(out: JsonBuffer, flat: readonly string[]): void {
  out.byte(0x7b);
  for (let i = 0; i < flat.length; i += 2) {
    if (i > 0) out.byte(0x2c);
    out.lowerToken(flat[i]!);
    out.byte(0x3a);
    out.string(flat[i + 1]!);
  }
  out.byte(0x7d);
}

/**
 * Header names equal ignoring case, or possibly equal: characters that
 * differ only in bit 0x20 count as equal (letters, and a few punctuation
 * pairs such as ^ and ~), so a false "equal" only sends the caller to the
 * exact path; any other difference is judged by toLowerCase().
 */
function sameName(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y && (x | 0x20) !== (y | 0x20)) return a.toLowerCase() === b.toLowerCase();
  }
  return true;
}

