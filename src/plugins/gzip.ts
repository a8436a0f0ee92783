/**
 * gzip (APISIX priority 995): compresses responses whose Content-Type is in
 * `types` for clients that accept gzip, as nginx's gzip filter does once
 * apisix/plugins/gzip.lua turned it on: not for HEAD, not for statuses other
 * than 200/403/404, never over an existing Content-Encoding (so never twice,
 * nor after brotli), Content-Length dropped, a strong ETag weakened.
 *
 * `buffers` sizes nginx's output buffers; here compressed bytes are written
 * as zlib produces them, under the data plane's backpressure, so there is no
 * buffer pool to size: a non-default value is accepted (APISIX confs carry
 * it) and warned about once.
 */
import type { Logger } from 'pino';
import { dataKey, definePlugin, type RequestContext } from '../core/plugin/index.js';
import { compressible, compressionPhases, httpVersionSchema, minLengthSchema, startCompression, typeSet, typesSchema, weakenEtag, type CompressionConf } from './lib/compression.js';
import { assertSyncCompressorUsable, gzipCompressor, type SyncCompressor } from './lib/sync-compressor.js';

export const schema = {
  type: 'object',
  properties: {
    types: typesSchema,
    min_length: minLengthSchema,
    comp_level: { type: 'integer', minimum: 1, maximum: 9, default: 1 },
    http_version: httpVersionSchema,
    buffers: {
      type: 'object',
      properties: {
        number: { type: 'integer', minimum: 1, default: 32 },
        size: { type: 'integer', minimum: 1, default: 4096 },
      },
      default: { number: 32, size: 4096 },
    },
    vary: { type: 'boolean' },
  },
};

interface GzipConf extends CompressionConf {
  comp_level: number;
  buffers: { number?: number; size?: number };
}

interface GzipCompiled {
  readonly conf: GzipConf;
  readonly types: ReadonlySet<string> | undefined;
}

const GZIP_STATUSES = new Set([200, 403, 404]);
const COMPRESSOR = dataKey<SyncCompressor>('gzip_compressor');
let logger: Logger | undefined;
let buffersWarned = false;

function compile(conf: GzipConf): GzipCompiled {
  const b = conf.buffers;
  if (!buffersWarned && logger !== undefined && ((b.number ?? 32) !== 32 || (b.size ?? 4096) !== 4096)) {
    buffersWarned = true;
    logger.warn({ buffers: b }, 'gzip: buffers is accepted for APISIX compatibility but sizes nothing here (compressed bytes are written as produced)');
  }
  return { conf, types: typeSet(conf.types) };
}

function header_filter(c: GzipCompiled, ctx: RequestContext): void {
  if (!GZIP_STATUSES.has(ctx.response.status) || !compressible(c.conf, c.types, ctx)) return;
  if (startCompression(ctx, c.conf.vary, 'gzip', COMPRESSOR, () => gzipCompressor({ level: c.conf.comp_level }))) weakenEtag(ctx);
}

const { body_filter, log } = compressionPhases(COMPRESSOR);

export default definePlugin({
  name: 'gzip',
  priority: 995,
  version: '0.1',
  schema,
  compile,
  header_filter,
  body_filter,
  log,
  init(init) {
    assertSyncCompressorUsable();
    logger = init.logger;
  },
});
