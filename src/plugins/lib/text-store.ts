/**
 * A batch processor's store for text entries (JSON lines): each entry is
 * encoded to UTF-8 into one growing buffer as it is pushed, so what waits for
 * the next batch is bytes outside the JavaScript heap, not a string per
 * request for the garbage collector to copy and promote while the batch
 * fills (1000 entries by default). A batch is those bytes and where each
 * entry ends.
 */
import type { EntryStore } from './batch-processor.js';

/** A cut batch: the entries' bytes back to back, entry i ending at ends[i]. */
export class TextBatch {
  constructor(
    readonly bytes: Buffer,
    readonly ends: readonly number[],
  ) {}

  get count(): number {
    return this.ends.length;
  }

  /** Entry i's bytes (a view, not a copy). */
  entry(i: number): Buffer {
    return this.bytes.subarray(i === 0 ? 0 : this.ends[i - 1]!, this.ends[i]!);
  }

  /** The entries joined: `open`, entries separated by `separator`, `close` (single bytes or none). */
  join(open: number | undefined, separator: number, close: number | undefined): Buffer {
    const n = this.ends.length;
    const out = Buffer.allocUnsafe(this.bytes.length + (n > 0 ? n - 1 : 0) + (open === undefined ? 0 : 1) + (close === undefined ? 0 : 1));
    let at = 0;
    if (open !== undefined) out[at++] = open;
    let start = 0;
    for (let i = 0; i < n; i++) {
      if (i > 0) out[at++] = separator;
      const end = this.ends[i]!;
      at += this.bytes.copy(out, at, start, end);
      start = end;
    }
    if (close !== undefined) out[at++] = close;
    return out;
  }
}

const MIN_CAPACITY = 64 * 1024;

export class TextStore implements EntryStore<string, TextBatch> {
  private bytes = Buffer.allocUnsafeSlow(MIN_CAPACITY);
  private at = 0;
  private ends: number[] = [];

  get length(): number {
    return this.ends.length;
  }

  push(entry: string): void {
    // Three bytes a UTF-16 unit at most: measure exactly only when that bound does not fit.
    if (this.at + entry.length * 3 > this.bytes.length) this.reserve(Buffer.byteLength(entry));
    this.at += this.bytes.write(entry, this.at);
    this.ends.push(this.at);
  }

  take(): TextBatch {
    const size = this.at;
    let batch: TextBatch;
    if (size * 4 < this.bytes.length) {
      // A small batch (batch_max_size 1, a quiet route's timer): its bytes are copied out, the buffer stays.
      batch = new TextBatch(Buffer.from(this.bytes.subarray(0, size)), this.ends);
    } else {
      // A full one takes the buffer along (no copy); the next starts as large as this one needed.
      batch = new TextBatch(this.bytes.subarray(0, size), this.ends);
      this.bytes = Buffer.allocUnsafeSlow(Math.max(MIN_CAPACITY, Math.ceil(size * 1.25)));
    }
    this.at = 0;
    this.ends = [];
    return batch;
  }

  count(batch: TextBatch): number {
    return batch.count;
  }

  drop(batch: TextBatch, n: number): TextBatch {
    if (n <= 0) return batch;
    const cut = batch.ends[n - 1] ?? batch.bytes.length;
    return new TextBatch(batch.bytes.subarray(cut), batch.ends.slice(n).map((e) => e - cut));
  }

  private reserve(bytes: number): void {
    if (this.at + bytes <= this.bytes.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.bytes.length * 2, this.at + bytes));
    this.bytes.copy(grown, 0, 0, this.at);
    this.bytes = grown;
  }
}
