/**
 * brotli (APISIX priority 996, above gzip so a response is never compressed
 * twice): compresses responses whose Content-Type is in `types` for clients
 * whose Accept-Encoding admits `br` (or `*`), flushing after each chunk so a
 * streamed response streams, as apisix/plugins/brotli.lua does. Not for HEAD
 * or a bodiless status, never over an existing Content-Encoding; the length
 * and validators (ETag, Last-Modified) are dropped as APISIX's
 * clear_header_as_body_modified does.
 */
import { constants } from 'node:zlib';
import { dataKey, definePlugin, type RequestContext } from '../core/plugin/index.js';
import { compressible, compressionPhases, httpVersionSchema, minLengthSchema, startCompression, typeSet, typesSchema, type CompressionConf } from './lib/compression.js';
import { assertSyncCompressorUsable, brotliCompressor, type SyncCompressor } from './lib/sync-compressor.js';

export const schema = {
  type: 'object',
  properties: {
    types: typesSchema,
    min_length: minLengthSchema,
    // 0 generic, 1 UTF-8 text, 2 WOFF 2.0 fonts.
    mode: { type: 'integer', minimum: 0, maximum: 2, default: 0 },
    comp_level: { type: 'integer', minimum: 0, maximum: 11, default: 6 },
    lgwin: { type: 'integer', default: 19, enum: [0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24] },
    lgblock: { type: 'integer', default: 0, enum: [0, 16, 17, 18, 19, 20, 21, 22, 23, 24] },
    http_version: httpVersionSchema,
    vary: { type: 'boolean' },
  },
};

interface BrotliConf extends CompressionConf {
  mode: number;
  comp_level: number;
  lgwin: number;
  lgblock: number;
}

interface BrotliCompiled {
  readonly conf: BrotliConf;
  readonly types: ReadonlySet<string> | undefined;
  readonly params: Record<number, number>;
}

const COMPRESSOR = dataKey<SyncCompressor>('brotli_compressor');

function compile(conf: BrotliConf): BrotliCompiled {
  const params: Record<number, number> = {
    [constants.BROTLI_PARAM_MODE]: conf.mode,
    [constants.BROTLI_PARAM_QUALITY]: conf.comp_level,
  };
  // 0 asks the encoder to choose, as the Lua binding passes it through; Node refuses 0 for these, so leave them out.
  if (conf.lgwin !== 0) params[constants.BROTLI_PARAM_LGWIN] = conf.lgwin;
  if (conf.lgblock !== 0) params[constants.BROTLI_PARAM_LGBLOCK] = conf.lgblock;
  return { conf, types: typeSet(conf.types), params };
}

function header_filter(c: BrotliCompiled, ctx: RequestContext): void {
  if (!compressible(c.conf, c.types, ctx)) return;
  if (startCompression(ctx, c.conf.vary, 'br', COMPRESSOR, () => brotliCompressor({ params: c.params }))) {
    ctx.response.headers.remove('etag');
    ctx.response.headers.remove('last-modified');
  }
}

const { body_filter, log } = compressionPhases(COMPRESSOR);

export default definePlugin({
  name: 'brotli',
  priority: 996,
  version: '0.1',
  schema,
  compile,
  header_filter,
  body_filter,
  log,
  init() {
    assertSyncCompressorUsable();
  },
});
