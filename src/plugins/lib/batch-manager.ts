/**
 * One logger plugin's batch processors (APISIX's
 * apisix/utils/batch-processor-manager.lua): one processor per plugin conf
 * (a conf is compiled once per config change, so a changed conf gets a new
 * processor while the old one drains), dropped once it has nothing left.
 *
 * Memory is bounded per process: when the entries pushed and not yet sent (or
 * given up) reach the plugin_metadata's `max_pending_entries` (default 8192,
 * as APISIX's), new entries are discarded, counted
 * (`batch_process_discarded_entries_total`) and reported in one error line at
 * most once a second. close() flushes every processor (shutdown).
 */
import type { Logger } from 'pino';
import type { RequestContext } from '../../core/plugin/index.js';
import { addBufferedSource, countDiscarded, type BufferedSource } from './batch-metrics.js';
import { arrayStore, BatchProcessor, type BatchOptions, type BatchSender, type EntryStore } from './batch-processor.js';

export const DEFAULT_MAX_PENDING_ENTRIES = 8192;
const DISCARD_LOG_INTERVAL_MS = 1000;

/** Merged into a logger's metadata_schema properties (APISIX's wrap_metadata_schema). */
export const maxPendingEntriesSchema = {
  type: 'integer',
  minimum: 1,
  default: DEFAULT_MAX_PENDING_ENTRIES,
  description: 'maximum number of entries waiting to be processed; new entries are discarded while the backlog exceeds it',
};

class Tracked<T, B> implements BufferedSource {
  constructor(
    readonly processor: BatchProcessor<T, B>,
    readonly routeId: string,
    readonly serverAddr: string,
  ) {}
  get label(): string {
    return this.processor.opts.name;
  }
  get buffered(): number {
    return this.processor.buffered;
  }
}

export class BatchManager<T, B = T[]> {
  private readonly processors = new Map<object, Tracked<T, B>>();
  private pending = 0;
  private discardedSinceLog = 0;
  private lastDiscardLog = 0;
  private logger: Logger | undefined;
  private users = 0;
  private releaseMetrics: (() => void) | undefined;

  /**
   * `label` names the processors in logs and metrics ("http logger");
   * `plugin` whose metadata holds the limit; `store` makes each processor's
   * entry store (arrays unless told).
   */
  constructor(
    readonly label: string,
    readonly plugin: string,
    private readonly store: () => EntryStore<T, B> = arrayStore as unknown as () => EntryStore<T, B>,
  ) {}

  /**
   * From the plugin's init(): where to report; returns the cleanup that
   * flushes. Gateways started in one process (tests, embedders) share the
   * manager: each one's close flushes everything buffered, which only sends
   * the others' entries early.
   */
  attach(logger: Logger): (deadlineMs: number) => Promise<void> {
    this.logger = logger;
    if (this.users++ === 0) this.releaseMetrics = addBufferedSource(() => this.processors.values());
    let done = false;
    return async (deadlineMs) => {
      if (done) return;
      done = true;
      if (--this.users === 0) this.releaseMetrics?.();
      await this.close(deadlineMs);
    };
  }

  /** Entries pushed and not yet sent or given up (all processors). */
  get backlog(): number {
    return this.pending;
  }

  /**
   * Queues `entry` for the processor of `key` (a compiled plugin conf),
   * creating it with `opts` and `send` on first use. Returns false when the
   * entry was discarded over the backlog limit.
   */
  push(key: object, opts: BatchOptions, ctx: RequestContext, entry: T, send: BatchSender<B>): boolean {
    const limit = ctx.pluginMetadata<{ max_pending_entries?: number }>(this.plugin)?.max_pending_entries ?? DEFAULT_MAX_PENDING_ENTRIES;
    if (this.pending >= limit) {
      this.discard(limit);
      return false;
    }
    let tracked = this.processors.get(key);
    if (tracked === undefined) {
      const processor: BatchProcessor<T, B> = new BatchProcessor<T, B>(opts, send, {
        done: (n) => {
          this.pending -= n;
        },
        error: (message) => this.logger?.error(message),
        idle: () => {
          if (this.processors.get(key)?.processor === processor) this.processors.delete(key);
        },
      }, this.store());
      tracked = new Tracked(processor, ctx.route.id || 'no-matched', ctx.var.get('server_addr') ?? '');
      this.processors.set(key, tracked);
    }
    this.pending++;
    tracked.processor.push(entry);
    return true;
  }

  private discard(limit: number): void {
    countDiscarded(this.label);
    this.discardedSinceLog++;
    const now = Date.now();
    if (now - this.lastDiscardLog < DISCARD_LOG_INTERVAL_MS) return;
    this.logger?.error(
      `max pending entries limit exceeded. discarding entry. total_pending_entries: ${this.pending} max_pending_entries: ${limit} discarded_entries: ${this.discardedSinceLog}`,
    );
    this.lastDiscardLog = now;
    this.discardedSinceLog = 0;
  }

  /** Flushes every processor and waits for their sends, at most `deadlineMs`. */
  async close(deadlineMs: number): Promise<void> {
    const all = [...this.processors.values()];
    this.processors.clear();
    await Promise.all(all.map((t) => t.processor.close(deadlineMs)));
  }
}
