/**
 * The loggers' batch figures, kept per process and exported by the prometheus
 * plugin when it runs (it registers them in its registry, so they are summed
 * over the workers as its own metrics are):
 * - `batch_process_entries{name,route_id,server_addr}`: entries buffered and
 *   not yet handed to the destination (APISIX's gauge of the same name);
 * - `batch_process_discarded_entries_total{name}`: entries dropped because the
 *   backlog was over `max_pending_entries` (APISIX only logs those; a counter
 *   lets an operator alert on lost log lines).
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface BufferedSource {
  readonly label: string;
  readonly routeId: string;
  readonly serverAddr: string;
  readonly buffered: number;
}

const sources = new Set<() => Iterable<BufferedSource>>();
const discarded = new Map<string, number>();

/** A batch manager's processors, read when metrics are scraped. */
export function addBufferedSource(list: () => Iterable<BufferedSource>): () => void {
  sources.add(list);
  return () => sources.delete(list);
}

export function countDiscarded(label: string): void {
  discarded.set(label, (discarded.get(label) ?? 0) + 1);
}

/** Entries discarded so far by the loggers labelled `label` in this process. */
export function discardedCount(label: string): number {
  return discarded.get(label) ?? 0;
}

/** Called by the prometheus plugin with its registry and metric prefix. */
export function registerBatchMetrics(registry: Registry, prefix: string): void {
  new Gauge({
    name: `${prefix}batch_process_entries`,
    help: 'batch process remaining entries',
    labelNames: ['name', 'route_id', 'server_addr'],
    registers: [registry],
    collect() {
      this.reset();
      for (const list of sources) {
        for (const s of list()) this.inc({ name: s.label, route_id: s.routeId, server_addr: s.serverAddr }, s.buffered);
      }
    },
  });
  new Counter({
    name: `${prefix}batch_process_discarded_entries_total`,
    help: 'log entries discarded because the backlog exceeded max_pending_entries',
    labelNames: ['name'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [name, n] of discarded) this.inc({ name }, n);
    },
  });
}
