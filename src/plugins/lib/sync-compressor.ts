/**
 * A streaming compressor that body_filter can drive synchronously: each call
 * takes one chunk and hands back whatever compressed bytes zlib produced for
 * it, keeping the stream's state between calls.
 *
 * body_filter is synchronous (src/core/plugin/contract.ts), and Node's public
 * zlib API is either streaming-and-async or synchronous-and-one-shot:
 * `gzipSync` and `_processChunk` close the engine after one call. So this
 * drives the engine's native handle the way Node's own `processChunkSync`
 * (lib/zlib.js) does, call for call, without closing it. Those two members
 * (`_handle.writeSync`, `_writeState`) have been stable since Node 10;
 * `assertSyncCompressorUsable` checks them at start-up, and
 * t/plugins/compression.test.ts decompresses what comes out.
 */
import { constants, createBrotliCompress, createGzip, type BrotliOptions, type ZlibOptions } from 'node:zlib';

interface NativeHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
}
/** The members of Node's zlib engine this module relies on. */
interface Engine {
  _handle: NativeHandle | null;
  _writeState: Uint32Array;
  destroyed: boolean;
  close(): void;
  on(event: 'error', fn: (err: Error) => void): unknown;
}

/** One scratch buffer for every compressor: a call never yields, and its output is copied out. */
const SCRATCH = Buffer.allocUnsafe(64 * 1024);
const EMPTY = Buffer.alloc(0);
function ignore(): void {}

export interface FlushFlags {
  /** After each chunk (zlib's Z_NO_FLUSH lets it hold data; a flush sends what it has). */
  readonly chunk: number;
  readonly finish: number;
}

export const GZIP_FLUSH: FlushFlags = { chunk: constants.Z_NO_FLUSH, finish: constants.Z_FINISH };
export const BROTLI_FLUSH: FlushFlags = { chunk: constants.BROTLI_OPERATION_FLUSH, finish: constants.BROTLI_OPERATION_FINISH };

export class SyncCompressor {
  private engine: Engine | undefined;

  constructor(
    engine: unknown,
    private readonly flags: FlushFlags,
  ) {
    const e = engine as Engine;
    // The handle reports errors by destroying the stream; write() checks `destroyed` instead.
    e.on('error', ignore);
    this.engine = e;
  }

  /** The compressed bytes for `chunk` (possibly none); with `finish`, the stream's end, after which it is closed. */
  push(chunk: Buffer, finish: boolean): Buffer {
    const engine = this.engine;
    if (engine === undefined) return EMPTY;
    if (chunk.length === 0 && !finish) return EMPTY;
    const out = this.write(engine, chunk, finish ? this.flags.finish : this.flags.chunk);
    if (finish) this.close();
    return out;
  }

  /** Frees the native stream early (a response cut off before its end). */
  close(): void {
    const engine = this.engine;
    if (engine === undefined) return;
    this.engine = undefined;
    engine.close();
  }

  private write(engine: Engine, input: Buffer, flush: number): Buffer {
    const handle = engine._handle;
    if (handle === null) throw new Error('compressor already closed');
    const state = engine._writeState;
    let parts: Buffer[] | undefined;
    let one: Buffer | undefined;
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      handle.writeSync(flush, input, inOff, inLen, SCRATCH, 0, SCRATCH.length);
      if (engine.destroyed) throw new Error('compression failed');
      const availOut = state[0]!;
      const availIn = state[1]!;
      const have = SCRATCH.length - availOut;
      if (have > 0) {
        const piece = Buffer.from(SCRATCH.subarray(0, have));
        if (one === undefined) one = piece;
        else (parts ??= [one]).push(piece);
      }
      inOff += inLen - availIn;
      inLen = availIn;
      // A full output buffer means zlib may have more for this input (what processChunkSync loops on).
      if (availOut !== 0) break;
    }
    if (parts !== undefined) return Buffer.concat(parts);
    return one ?? EMPTY;
  }
}

export function gzipCompressor(options: ZlibOptions): SyncCompressor {
  return new SyncCompressor(createGzip(options), GZIP_FLUSH);
}

export function brotliCompressor(options: BrotliOptions): SyncCompressor {
  return new SyncCompressor(createBrotliCompress(options), BROTLI_FLUSH);
}

/** Throws when this Node's zlib lacks the internals SyncCompressor drives; call from a plugin's init. */
export function assertSyncCompressorUsable(): void {
  const probe = gzipCompressor({});
  const bytes = Buffer.concat([probe.push(Buffer.from('probe'), false), probe.push(EMPTY, true)]);
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw new Error('this Node version\'s zlib cannot be driven chunk by chunk');
}
