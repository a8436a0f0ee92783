/**
 * APISIX's batch processor (apisix/utils/batch-processor.lua): entries are
 * buffered and handed to the destination in batches of `batch_max_size`, when
 * the buffer fills, after `inactive_timeout` seconds without a new entry, or
 * `buffer_duration` seconds after the oldest one. A failed batch is retried
 * `max_retry_count` times, `retry_delay` seconds apart, then dropped; a sender
 * may report that the first entries got through (`firstFail`), and only the
 * rest is retried. Never awaited by a request: push() only appends and arms a
 * timer.
 *
 * One difference from APISIX: the buffer timer fires at the earlier of the
 * two deadlines instead of re-checking every `inactive_timeout` seconds, so an
 * entry waits at most `buffer_duration` (APISIX can overshoot it by up to one
 * `inactive_timeout`).
 */

/** The options every batch-processor logger takes (APISIX's batch_processor.schema). */
export interface BatchOptions {
  name: string;
  batch_max_size: number;
  inactive_timeout: number;
  buffer_duration: number;
  max_retry_count: number;
  retry_delay: number;
}

/** Merged into a logger's schema properties (APISIX's wrap_schema); `name` defaults to the logger's label. */
export function batchSchemaProperties(defaultName: string): Record<string, Record<string, unknown>> {
  return {
    name: { type: 'string', default: defaultName },
    max_retry_count: { type: 'integer', minimum: 0, default: 0 },
    retry_delay: { type: 'integer', minimum: 0, default: 1 },
    buffer_duration: { type: 'integer', minimum: 1, default: 60 },
    inactive_timeout: { type: 'integer', minimum: 1, default: 5 },
    batch_max_size: { type: 'integer', minimum: 1, default: 1000 },
  };
}

/**
 * Sends one batch. Resolve when every entry got through; throw (or reject) on
 * failure, with `firstFail` (1-based, as APISIX's) when the entries before it
 * did get through.
 */
export type BatchSender<B> = (batch: B, batchMaxSize: number) => Promise<void>;

/**
 * Where a processor keeps entries until a batch is cut, and what a batch is:
 * an array of the entries (arrayStore) or, for text, their bytes (TextStore).
 */
export interface EntryStore<T, B> {
  readonly length: number;
  push(entry: T): void;
  /** Everything stored, as one batch; the store starts empty. */
  take(): B;
  /** The entries a batch holds. */
  count(batch: B): number;
  /** The batch without its first `n` entries (the sender reported them delivered). */
  drop(batch: B, n: number): B;
}

/** Entries kept as they are, a batch being their array. */
export function arrayStore<T>(): EntryStore<T, T[]> {
  let buffer: T[] = [];
  return {
    get length() {
      return buffer.length;
    },
    push: (entry) => void buffer.push(entry),
    take() {
      const out = buffer;
      buffer = [];
      return out;
    },
    count: (batch) => batch.length,
    drop: (batch, n) => batch.slice(n),
  };
}

export class BatchError extends Error {
  constructor(
    message: string,
    readonly firstFail?: number,
  ) {
    super(message);
  }
}

export interface BatchEvents {
  /** `count` entries left the processor: sent, or dropped after the last retry. */
  done(count: number): void;
  error(message: string): void;
  /** Nothing is buffered or being sent any more. */
  idle(): void;
}

interface Batch<B> {
  entries: B;
  retries: number;
}

export class BatchProcessor<T, B = T[]> {
  private firstAt = 0;
  private lastAt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Batches being sent or waiting for a retry, for close() to wait on. */
  private readonly inFlight = new Set<Promise<void>>();
  /** Batches waiting out retry_delay, woken early by close(). */
  private readonly waiting = new Map<NodeJS.Timeout, () => void>();
  private closing = false;

  constructor(
    readonly opts: BatchOptions,
    private readonly send: BatchSender<B>,
    private readonly events: BatchEvents,
    private readonly store: EntryStore<T, B> = arrayStore<T>() as unknown as EntryStore<T, B>,
  ) {}

  /** Entries buffered and not yet handed to the sender. */
  get buffered(): number {
    return this.store.length;
  }

  /** Nothing buffered, sending or waiting for a retry. */
  get idle(): boolean {
    return this.store.length === 0 && this.inFlight.size === 0;
  }

  push(entry: T): void {
    const opts = this.opts;
    const store = this.store;
    store.push(entry);
    if (store.length >= opts.batch_max_size) {
      this.flush();
      return;
    }
    const now = performance.now();
    if (store.length === 1) this.firstAt = now;
    this.lastAt = now;
    this.arm(now);
  }

  /** Hands what is buffered to the sender now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.store.length === 0) return;
    this.run({ entries: this.store.take(), retries: 0 });
  }

  /**
   * Shutdown: flushes the buffer, sends batches waiting for a retry at once
   * (their last try), and waits for every send until `deadlineMs` passes.
   */
  async close(deadlineMs: number): Promise<void> {
    this.closing = true;
    this.flush();
    for (const [t, wake] of this.waiting) {
      clearTimeout(t);
      wake();
    }
    this.waiting.clear();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, deadlineMs);
    });
    await Promise.race([Promise.allSettled([...this.inFlight]), deadline]);
    clearTimeout(timer);
  }

  private arm(now: number): void {
    if (this.timer !== undefined) return;
    const opts = this.opts;
    const due = Math.min(this.lastAt + opts.inactive_timeout * 1000, this.firstAt + opts.buffer_duration * 1000);
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, due - now));
    // A quiet logger must not keep a stopping process alive; close() flushes instead.
    this.timer.unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    const now = performance.now();
    const opts = this.opts;
    if (now - this.lastAt >= opts.inactive_timeout * 1000 - 1 || now - this.firstAt >= opts.buffer_duration * 1000 - 1) {
      this.flush();
      return;
    }
    this.arm(now);
  }

  private run(batch: Batch<B>): void {
    const p = this.attempt(batch);
    this.inFlight.add(p);
    void p.finally(() => {
      this.inFlight.delete(p);
      if (this.idle) this.events.idle();
    });
  }

  private async attempt(batch: Batch<B>): Promise<void> {
    const name = this.opts.name;
    const store = this.store;
    try {
      await this.send(batch.entries, this.opts.batch_max_size);
      this.events.done(store.count(batch.entries));
      return;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const firstFail = err instanceof BatchError ? err.firstFail : undefined;
      const count = store.count(batch.entries);
      if (firstFail !== undefined && firstFail > 1) {
        this.events.error(`Batch Processor[${name}] failed to process entries [${count + 1 - firstFail}/${count}]: ${message}`);
        this.events.done(firstFail - 1);
        batch.entries = store.drop(batch.entries, firstFail - 1);
      } else {
        this.events.error(`Batch Processor[${name}] failed to process entries: ${message}`);
      }
    }
    batch.retries++;
    if (batch.retries <= this.opts.max_retry_count && store.count(batch.entries) > 0 && !this.closing) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiting.delete(t);
          resolve();
        }, this.opts.retry_delay * 1000);
        this.waiting.set(t, resolve);
      });
      return this.attempt(batch);
    }
    this.events.error(`Batch Processor[${name}] exceeded the max_retry_count[${batch.retries}] dropping the entries`);
    this.events.done(store.count(batch.entries));
  }
}
