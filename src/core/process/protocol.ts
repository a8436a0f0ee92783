/**
 * The process protocol: what the primary and a data-plane worker tell each
 * other to start, follow the store and stop (workers.ts and src/worker.ts),
 * as two topics of the IPC channel (channel.ts).
 */
import type { AddressInfo } from 'node:net';
import type { PorticoConfig } from '../config/types.js';
import type { StoreItem, WatchEvent } from '../store/types.js';
import { service, topic } from './channel.js';
import type { ListenFailure } from './listen-error.js';

export type PrimaryMessage =
  | { type: 'init'; config: PorticoConfig; items: StoreItem[]; revision: number; logLevel: string }
  | { type: 'events'; events: WatchEvent[]; revision: number }
  | { type: 'close' };

export type WorkerMessage =
  /** The worker's message listener is attached (cluster's 'online' comes before its modules loaded). */
  | { type: 'ready' }
  /** Serving: the listener accepts, with the config it was sent. */
  | { type: 'listening'; address: AddressInfo; tlsAddresses: AddressInfo[] }
  | { type: 'applied'; revision: number; version: number }
  | { type: 'failed'; error: string; listen?: ListenFailure };

export const TO_WORKER = topic<PrimaryMessage>('process:primary');
export const TO_PRIMARY = topic<WorkerMessage>('process:worker');

/** The enabled plugin names and plugin_dirs a reload brings every process to. */
export interface PluginSet {
  readonly plugins: string[];
  readonly plugin_dirs: string[];
}

/**
 * PUT /apisix/admin/plugins/reload, passed on to each worker: it loads the
 * set (external code anew), swaps it in and recompiles; answers the reason
 * when the set does not load, keeping its running set. Loading TypeScript can
 * take a few seconds on a busy machine.
 */
export const RELOAD_PLUGINS = service<PluginSet, { error?: string }>('process:reload-plugins', 60_000);
