/**
 * Data-plane workers forked before the primary has loaded the gateway: a
 * worker spends about a second importing its modules and the primary as long
 * again importing, opening the store and compiling, so forking first lets the
 * two overlap on a multi-core machine (`npm start` serves sooner). A
 * preforked worker only loads and says it is ready; startWorkers adopts it,
 * hears the messages it sent meanwhile, and sends it its config. If the
 * primary fails first, node:cluster's disconnect ends the worker (it exits on
 * a disconnect until it has listened: src/worker.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { PorticoConfig } from '../config/types.js';
import { workerCount } from './worker-count.js';

/** A forked worker and what it said before anyone listened. */
export interface Preforked {
  readonly worker: Worker;
  /** Messages received before listenTo(); afterwards, `deliver` receives them. */
  readonly early: unknown[];
  deliver: ((msg: unknown) => void) | undefined;
}

const waiting: Preforked[] = [];

/** cluster.setupPrimary for Portico's workers, from the config of the gateway about to fork them. */
export function setupWorkerCluster(config: PorticoConfig): void {
  const isTs = import.meta.url.endsWith('.ts');
  // A request allocates dozens of short-lived objects (more with a logger's entry): a larger young generation
  // lets more of them die before a scavenge copies them, which measured fewer GC pauses and a lower p99.
  const semiSpace = config.nginx_config.worker_semi_space_mb;
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({
    exec: fileURLToPath(new URL(`../../worker.${isTs ? 'ts' : 'js'}`, import.meta.url)),
    // PORTICO_WORKER_NODE_ARGS: Node flags for the workers only, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to
    // profile the data plane (NODE_OPTIONS refuses --cpu-prof, and the primary's own flags are not passed on).
    execArgv: [
      ...(isTs ? ['--import', 'tsx'] : []),
      ...(semiSpace === undefined ? [] : [`--max-semi-space-size=${semiSpace}`]),
      ...(process.env.PORTICO_WORKER_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? []),
    ],
    serialization: 'advanced',
  });
}

/** Forks the config's workers now (main.ts, before importing the gateway). */
export function preforkWorkers(config: PorticoConfig): void {
  setupWorkerCluster(config);
  for (let i = workerCount(config); i > 0; i--) {
    const entry: Preforked = { worker: cluster.fork(), early: [], deliver: undefined };
    entry.worker.on('message', (msg: unknown) => (entry.deliver === undefined ? entry.early.push(msg) : entry.deliver(msg)));
    waiting.push(entry);
  }
}

/** A preforked worker still alive, or undefined when none is left. */
export function adoptPreforked(): Preforked | undefined {
  for (let entry = waiting.shift(); entry !== undefined; entry = waiting.shift()) {
    if (!entry.worker.isDead()) return entry;
  }
  return undefined;
}

/** From now on `deliver` hears the worker's messages, starting with those it sent before. */
export function listenTo(entry: Preforked, deliver: (msg: unknown) => void): void {
  entry.deliver = deliver;
  for (const msg of entry.early.splice(0)) deliver(msg);
}
