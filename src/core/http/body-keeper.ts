/**
 * Keeps the first bytes of a request or response body for plugins that log
 * them (APISIX's loggers read the request body in access and hold response
 * chunks in body_filter). Bodies still stream: the keeper copies up to its
 * limit as chunks go by and never holds back or buffers the stream itself.
 */
import { Transform, type TransformCallback } from 'node:stream';

export class BodyKeeper {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(public max: number) {}

  add(chunk: Buffer): void {
    const room = this.max - this.size;
    if (room <= 0 || chunk.length === 0) return;
    // A slice would pin the whole chunk (often a 64 KiB pooled buffer); copy what is kept.
    const kept = chunk.length <= room ? Buffer.from(chunk) : Buffer.from(chunk.subarray(0, room));
    this.chunks.push(kept);
    this.size += kept.length;
  }

  get body(): Buffer {
    if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks, this.size)];
    return this.chunks[0]!;
  }
}

/** A keeper with room for at least `max` bytes: the one there is (grown), or a new one. */
export function keeperFor(k: BodyKeeper | undefined, max: number): BodyKeeper {
  if (k === undefined) return new BodyKeeper(max);
  if (max > k.max) k.max = max;
  return k;
}

/** The request body on its way to the upstream, with what goes by copied into a keeper. */
export class KeepingStream extends Transform {
  constructor(private readonly keeper: BodyKeeper) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.keeper.add(chunk);
    cb(null, chunk);
  }
}
