/**
 * A batch processor's store for text entries (JSON lines): each entry is
 * encoded to UTF-8 into one growing buffer as it is pushed (a string as is,
 * or a value written as JSON by lib/json-bytes.ts), so what waits for
 * the next batch is bytes outside the JavaScript heap, not a string per
 * request for the garbage collector to copy and promote while the batch
 * fills (1000 entries by default). A batch is those bytes and where each
 * entry ends.
 */
import type { EntryStore } from './batch-processor.js';
import { JsonBuffer } from './json-bytes.js';

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

/** Writes one entry's bytes (a JSON value, a line) at the end of `out`. */
export type EntryWriter<T> = (out: JsonBuffer, entry: T) => void;

const writeText: EntryWriter<string> = (out, entry) => out.text(entry);

export class TextStore<T = string> implements EntryStore<T, TextBatch> {
  private readonly out = new JsonBuffer(MIN_CAPACITY);
  private ends: number[] = [];

  /** `write` encodes an entry as it is pushed: strings as UTF-8 unless told. */
  constructor(private readonly write: EntryWriter<T> = writeText as unknown as EntryWriter<T>) {}

  get length(): number {
    return this.ends.length;
  }

  push(entry: T): void {
    const out = this.out;
    const before = out.at;
    try {
      this.write(out, entry);
    } catch (err) {
      out.at = before; // nothing half-written stays behind
      throw err;
    }
    this.ends.push(out.at);
  }

  take(): TextBatch {
    const out = this.out;
    const size = out.at;
    let batch: TextBatch;
    if (size * 4 < out.bytes.length) {
      // A small batch (batch_max_size 1, a quiet route's timer): its bytes are copied out, the buffer stays.
      batch = new TextBatch(Buffer.from(out.bytes.subarray(0, size)), this.ends);
      out.at = 0;
    } else {
      // A full one takes the buffer along (no copy); the next starts as large as this one needed.
      batch = new TextBatch(out.detach(Math.max(MIN_CAPACITY, Math.ceil(size * 1.25))), this.ends);
    }
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
}
