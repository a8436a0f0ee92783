/**
 * A log entry as JSON text, for the loggers that send text (http-logger,
 * file-logger): exactly JSON.stringify(logEntry(...)), key for key
 * (t/plugins/loggers/log-json.test.ts holds the two side by side), but the
 * full entry's timing fields, its last four, are written onto the text by
 * hand. They are fractional doubles (and a 13-digit start time) whose
 * shortest-form formatting in JSON.stringify cost as much as the rest of the
 * entry's numbers and strings; here they are formatted from integers.
 */
import type { RequestContext } from '../../core/plugin/index.js';
import type { CompiledLog, LogConf } from './log-conf.js';
import { customLogEntry, fullLogHead, latencyOf, logVars, micros } from './log-entry.js';

const pad3 = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n));

/**
 * Milliseconds rounded to the microsecond, as JSON.stringify(micros(ms))
 * writes them: below 2^53 microseconds the decimal with its trailing zeros
 * cut is exactly the shortest form JSON.stringify picks.
 */
export function microsJson(ms: number): string {
  const us = Math.round(ms * 1000);
  if (!Number.isSafeInteger(us) || us < 0) return JSON.stringify(micros(ms));
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  if (frac === 0) return String(whole);
  const digits = pad3(frac);
  return `${whole}.${digits.charCodeAt(2) !== 48 ? digits : digits.charCodeAt(1) !== 48 ? digits.slice(0, 2) : digits.slice(0, 1)}`;
}

/** A whole number of milliseconds since the epoch, as JSON.stringify writes it (seconds and milliseconds are small integers). */
export function epochMsJson(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 1000) return JSON.stringify(ms);
  const seconds = Math.floor(ms / 1000);
  return `${seconds}${pad3(ms - seconds * 1000)}`;
}

/**
 * get_log_entry as JSON text: JSON.stringify(logEntry(...)), with
 * `routeIdDefault` as the route id of a full entry when no route matched
 * (http-logger's 'no-matched').
 */
export function logEntryJson(plugin: string, conf: LogConf, compiled: CompiledLog, ctx: RequestContext, routeIdDefault?: string): string {
  const custom = customLogEntry(plugin, conf, compiled, ctx);
  if (custom !== undefined) {
    if (routeIdDefault !== undefined) custom.route_id ??= routeIdDefault;
    return JSON.stringify(custom);
  }
  const head = fullLogHead(conf, compiled, ctx, logVars(ctx));
  if (routeIdDefault !== undefined) head.route_id ??= routeIdDefault;
  const lat = latencyOf(ctx);
  const json = JSON.stringify(head);
  const upstream = lat.upstream === undefined ? '' : `,"upstream_latency":${microsJson(lat.upstream)}`;
  return `${json.slice(0, -1)},"start_time":${epochMsJson(Math.round(lat.startMs))},"latency":${microsJson(lat.latency)}${upstream},"apisix_latency":${microsJson(lat.apisix)}}`;
}
