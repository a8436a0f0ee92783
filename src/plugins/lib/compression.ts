/**
 * What gzip and brotli share: the schema fields they have in common
 * (apisix/plugins/gzip.lua, brotli.lua), the header_filter checks that decide
 * whether a response is compressed, and the client's Accept-Encoding.
 */
import type { DataKey, RequestContext } from '../../core/plugin/index.js';
import type { SyncCompressor } from './sync-compressor.js';

export const typesSchema = {
  anyOf: [{ type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } }, { enum: ['*'] }],
  default: ['text/html'],
};
export const minLengthSchema = { type: 'integer', minimum: 1, default: 20 };
export const httpVersionSchema = { enum: [1.1, 1.0], default: 1.1 };

export interface CompressionConf {
  types: string[] | '*';
  min_length: number;
  http_version: number;
  vary?: boolean;
}

/** `types` as a set, built at config-change time; undefined for `*`. */
export function typeSet(types: string[] | '*'): ReadonlySet<string> | undefined {
  return types === '*' ? undefined : new Set(types);
}

/**
 * The response-side checks both plugins make, in their order: nothing to
 * compress in a HEAD answer or a bodiless status, never a response that
 * already has a Content-Encoding (the upstream's, or the other plugin's:
 * brotli runs first, so a response is never compressed twice), a
 * Content-Type in `types` (none: no compression, as nginx), a known length
 * under `min_length`, and the client's HTTP version. True when the response
 * qualifies; Accept-Encoding is checked separately because `vary` applies
 * whatever the client accepts.
 */
export function compressible(conf: CompressionConf, types: ReadonlySet<string> | undefined, ctx: RequestContext): boolean {
  if (ctx.method === 'HEAD') return false;
  const res = ctx.response;
  const status = res.status;
  if (status === 204 || status === 304 || status < 200) return false;
  const headers = res.headers;
  const encoding = headers.get('content-encoding');
  if (encoding !== undefined && encoding !== '' && encoding !== 'identity') return false;
  let type = headers.get('content-type');
  if (type === undefined) return false;
  if (types !== undefined) {
    const semi = type.indexOf(';');
    if (semi >= 0) type = type.slice(0, semi);
    if (!types.has(type.trim().toLowerCase())) return false;
  }
  const length = headers.get('content-length');
  if (length !== undefined) {
    const n = Number(length);
    if (Number.isFinite(n) && n < conf.min_length) return false;
  }
  const protocol = ctx.var.get('server_protocol');
  const version = protocol === undefined ? 1.1 : Number(protocol.slice(5));
  return !(version < conf.http_version);
}

/**
 * Whether Accept-Encoding admits `coding` with a q above 0. `star` lets `*`
 * stand for it (brotli.lua's check does; nginx's gzip looks for "gzip" only).
 */
export function acceptsCoding(header: string | undefined, coding: string, star: boolean): boolean {
  if (header === undefined) return false;
  for (const item of header.split(',')) {
    const semi = item.indexOf(';');
    const name = (semi < 0 ? item : item.slice(0, semi)).trim().toLowerCase();
    if (name !== coding && !(star && name === '*')) continue;
    if (semi < 0) return true;
    const q = /;\s*q\s*=\s*([0-9.]+)/i.exec(item.slice(semi));
    if (q === null || Number(q[1]) > 0) return true;
  }
  return false;
}

/** nginx's gzip weakens a strong ETag: the bytes differ, the resource does not. */
export function weakenEtag(ctx: RequestContext): void {
  const headers = ctx.response.headers;
  const etag = headers.get('etag');
  if (etag !== undefined && etag.startsWith('"')) headers.set('etag', 'W/' + etag);
}

/**
 * The tail of both header_filters once a response qualifies: `vary` (whatever
 * the client accepts, so a cache keys on it), then, when the client accepts
 * `coding`, the compressor for this response under `key` and the new
 * Content-Encoding without the old length. False when not compressing.
 */
export function startCompression(
  ctx: RequestContext,
  vary: boolean | undefined,
  coding: 'gzip' | 'br',
  key: DataKey<SyncCompressor>,
  make: () => SyncCompressor,
): boolean {
  const headers = ctx.response.headers;
  if (vary) headers.add('vary', 'Accept-Encoding');
  if (!acceptsCoding(ctx.requestHeader('accept-encoding'), coding, coding === 'br')) return false;
  ctx.setData(key, make());
  headers.set('content-encoding', coding);
  headers.remove('content-length');
  return true;
}

/** body_filter and log for a plugin that keeps its compressor under `key`. */
export function compressionPhases(key: DataKey<SyncCompressor>): {
  body_filter(conf: unknown, ctx: RequestContext, chunk: Buffer, eof: boolean): Buffer | void;
  log(conf: unknown, ctx: RequestContext): void;
} {
  return {
    body_filter(_conf, ctx, chunk, eof) {
      const compressor = ctx.getData(key);
      if (compressor !== undefined) return compressor.push(chunk, eof);
    },
    // A response cut off before its end never reached eof: free the native stream now.
    log(_conf, ctx) {
      ctx.getData(key)?.close();
    },
  };
}
