/**
 * Where the data plane runs. It runs in worker processes, as nginx's does:
 * even with worker_processes 1 the primary keeps only the store and the Admin
 * API, so their work (schema checks, compiling, SQLite writes) never queues
 * behind requests or requests behind it, and the request path runs in a
 * process that loads nothing else (measured: ~5% more requests/s than sharing
 * the primary).
 */
import { startServing } from '../dataplane/server.js';
import type { DataPlane, DataPlaneOptions } from '../dataplane/types.js';
import { servesInWorkers } from './worker-count.js';
import { Channel } from './channel.js';

/** `channel`: the gateway's IPC channel, which its workers join (the plugins' shared state rides on it). */
export async function startDataPlane(opts: DataPlaneOptions, channel: Channel = new Channel()): Promise<DataPlane> {
  if (servesInWorkers(opts.config, opts.inProcess)) {
    const { startWorkers } = await import('./workers.js');
    return startWorkers(opts, channel);
  }
  return startServing(opts);
}
