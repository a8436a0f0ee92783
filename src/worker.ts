/**
 * Entry point of a data-plane worker process (see core/process/workers.ts):
 * waits for the primary's init message, serves from an IPC-fed config, drains
 * on `close`. Everything it says to the primary goes over the IPC channel.
 */
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import { createLogger } from './core/log/logger.js';
import { startServing } from './core/dataplane/server.js';
import type { DataPlane } from './core/dataplane/types.js';
import { workerCount } from './core/process/worker-count.js';
import { connectToPrimary } from './core/process/worker-link.js';
import { RELOAD_PLUGINS, TO_PRIMARY, TO_WORKER, type PluginSet, type PrimaryMessage, type WorkerMessage } from './core/process/protocol.js';
import { ListenError } from './core/process/listen-error.js';
import { sharedStateHub } from './core/process/shared-state.js';
import { HEALTH_REPORTS } from './core/control/health.js';
import { healthReports } from './core/upstream/index.js';
import { registerPubSubBackends } from './pubsub/index.js';
import { configFacts, PluginInits } from './core/plugin/lifecycle.js';
import { PORTICO_VERSION } from './core/config/version.js';
import { PluginRegistry } from './core/plugin/registry.js';
import type { ConfigFeed } from './core/snapshot/snapshot.js';
import type { ListResult, WatchListener } from './core/store/types.js';

if (!cluster.isWorker) throw new Error('src/worker.ts runs only as a cluster worker');

/** Set by init; the channel reports through it (before init there is nothing to report). */
let logger: Logger | undefined;
const { channel, primary } = connectToPrimary({ onProblem: (problem, err) => logger?.warn({ err }, problem) });

function send(msg: WorkerMessage): void {
  try {
    channel.notify(primary, TO_PRIMARY, msg);
  } catch {
    // The primary is gone: nobody to tell (see the 'disconnect' listener).
  }
}

let listener: WatchListener | undefined;
let dataPlane: DataPlane | undefined;
let cleanupPlugins: (() => Promise<void>) | undefined;
/** Longer than the loggers' flush deadline (3 s), shorter than the primary's exit grace (7 s). */
const PLUGIN_CLEANUP_MS = 4000;
const pending: Array<Extract<PrimaryMessage, { type: 'events' }>> = [];

channel.on(TO_WORKER, (msg) => {
  if (msg.type === 'init') void init(msg);
  else if (msg.type === 'events') {
    if (listener) listener(msg.events, msg.revision);
    else pending.push(msg);
  } else if (msg.type === 'close') drainAndExit();
});

let draining = false;
function drainAndExit(): void {
  if (draining) return;
  draining = true;
  const done = () => process.exit(0);
  // Plugins' cleanups after the last request's log phase: the loggers flush what they buffered.
  // Bounded: the primary kills a worker that lingers, and a cleanup must not be the reason.
  const cleanup = () =>
    cleanupPlugins === undefined ? done() : Promise.race([cleanupPlugins(), new Promise((r) => setTimeout(r, PLUGIN_CLEANUP_MS))]).then(done, done);
  if (dataPlane) dataPlane.close().then(cleanup, cleanup);
  else cleanup();
}

// Ctrl-C reaches the whole process group, and service managers signal every process of the unit: drain as on
// the primary's `close` instead of cutting in-flight requests. A worker left without its primary exits on the
// IPC disconnect (node:cluster does that) until it has listened; from then on see outliveThePrimary.
process.on('SIGINT', drainAndExit);
process.on('SIGTERM', drainAndExit);

// The control API (in the primary) asks each worker what its health checkers see.
channel.serve(HEALTH_REPORTS, () => healthReports());

send({ type: 'ready' });

async function init(msg: Extract<PrimaryMessage, { type: 'init' }>): Promise<void> {
  try {
    logger = createLogger(msg.logLevel);
    const listing: ListResult = { items: msg.items, revision: msg.revision };
    const feed: ConfigFeed = {
      list: async () => listing,
      watch(_prefix, _from, l) {
        listener = (events, revision) => {
          l(events, revision);
          // Compilation runs on the next tick; report once it did.
          setImmediate(() => send({ type: 'applied', revision, version: dataPlane?.snapshot().version ?? 0 }));
        };
        for (const p of pending.splice(0)) listener(p.events, p.revision);
        return { close: () => (listener = undefined) };
      },
    };
    const registry = await PluginRegistry.load(msg.config.plugins, msg.config.plugin_dirs);
    const workers = workerCount(msg.config);
    const shared = sharedStateHub({ channel, role: 'worker', workers, primary });
    const inits = new PluginInits(
      { logger, version: PORTICO_VERSION, process: 'worker', ...configFacts(msg.config), dataPlaneInWorkers: true, workers, shared },
      msg.config.plugin_attr,
    );
    await inits.update(registry.list());
    cleanupPlugins = () => inits.close();
    channel.serve(RELOAD_PLUGINS, (set) => reloadPlugins(registry, inits, set));
    // Messaging backends log through this process's logger (broker failures, dropped sessions).
    registerPubSubBackends({ logger });
    dataPlane = await startServing({ config: msg.config, registry, store: feed, logger });
    send({ type: 'listening', address: dataPlane.address, tlsAddresses: dataPlane.tlsAddresses });
    outliveThePrimary(msg.revision);
  } catch (err) {
    send({ type: 'failed', error: err instanceof Error ? err.message : String(err), listen: err instanceof ListenError ? err.failure : undefined });
    process.exit(1);
  }
}

/**
 * A primary that dies (kill -9, a crash in the store) must not take routes that were fine down with it: the
 * worker keeps serving its last configuration until a new main process retires it (src/core/process/orphans.ts)
 * or it is signalled. node:cluster exits a worker on an unexpected disconnect unless it is marked as leaving.
 */
function outliveThePrimary(startRevision: number): void {
  cluster.worker!.exitedAfterDisconnect = true;
  process.once('disconnect', () => {
    if (draining) return;
    logger?.error(
      { revision: dataPlane?.appliedRevision() ?? startRevision },
      'the main process is gone: serving the last configuration until a new main process takes over (Admin API and config changes are down)',
    );
  });
}

/** The primary's PUT /plugins/reload: load the set anew, swap it in, recompile; the reason when it does not load. */
async function reloadPlugins(registry: PluginRegistry, inits: PluginInits, set: PluginSet): Promise<{ error?: string }> {
  try {
    const next = await PluginRegistry.load(set.plugins, set.plugin_dirs);
    await inits.update(next.list());
    registry.replace(next);
    await dataPlane?.pluginsChanged(set);
    return {};
  } catch (err) {
    logger?.error({ err }, 'plugin reload failed; the running set keeps serving');
    return { error: err instanceof Error ? err.message : String(err) };
  }
}
