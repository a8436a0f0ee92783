/**
 * Entry point of a data-plane worker process (see workers.ts): waits for the
 * primary's init message, serves from an IPC-fed config, drains on `close`.
 */
import cluster from 'node:cluster';
import { pino } from 'pino';
import { startServing } from './core/dataplane/server.js';
import type { DataPlane } from './core/dataplane/types.js';
import { workerCount } from './core/process/worker-count.js';
import { registerKafkaPubSub } from './pubsub/index.js';
import { initPlugins } from './core/plugin/contract.js';
import { PORTICO_VERSION } from './core/config/version.js';
import { PluginRegistry } from './core/plugin/registry.js';
import type { ConfigFeed } from './core/snapshot/snapshot.js';
import type { ListResult, WatchListener } from './core/store/types.js';
import type { PrimaryMessage, WorkerMessage } from './core/process/workers.js';

if (!cluster.isWorker) throw new Error('worker-entry runs only as a cluster worker');

function send(msg: WorkerMessage): void {
  process.send?.(msg);
}

let listener: WatchListener | undefined;
let dataPlane: DataPlane | undefined;
const pending: Array<Extract<PrimaryMessage, { type: 'events' }>> = [];

process.on('message', (msg: PrimaryMessage) => {
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
  if (dataPlane) dataPlane.close().then(done, done);
  else done();
}

// Ctrl-C reaches the whole process group, and service managers signal every process of the unit: drain as on
// the primary's `close` instead of cutting in-flight requests. A worker left without its primary exits on the
// IPC disconnect (node:cluster does that).
process.on('SIGINT', drainAndExit);
process.on('SIGTERM', drainAndExit);

send({ type: 'ready' });

async function init(msg: Extract<PrimaryMessage, { type: 'init' }>): Promise<void> {
  try {
    const logger = pino({ level: msg.logLevel });
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
    const registry = await PluginRegistry.load(msg.config.plugins);
    // The process exits on close, which is all the cleanup a worker needs.
    await initPlugins(registry.list(), msg.config.plugin_attr, {
      logger,
      version: PORTICO_VERSION,
      process: 'worker',
      dataPlaneInWorkers: true,
      workers: workerCount(msg.config),
    });
    // Messaging backends log through this process's logger (broker failures, dropped sessions).
    registerKafkaPubSub({ logger });
    dataPlane = await startServing({ config: msg.config, registry, store: feed, logger });
    send({ type: 'listening', address: dataPlane.address, tlsAddresses: dataPlane.tlsAddresses });
  } catch (err) {
    send({ type: 'failed', error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  }
}
