/** What starts a data plane and what it hands back, apart from the server so process/ can name them without loading it. */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { PorticoConfig } from '../config/types.js';
import type { PluginSet } from '../process/protocol.js';
import type { ConfigFeed, PluginLookup, Snapshot } from '../snapshot/snapshot.js';

export interface DataPlaneOptions {
  config: PorticoConfig;
  /** The plugin registry (or, in tests, anything with its get/checkConf). */
  registry: PluginLookup;
  /** The config store, or in a worker process the IPC feed from the primary. */
  store: ConfigFeed;
  logger?: Logger;
  /**
   * With worker_processes 1, serve requests in this process instead of one
   * forked worker: for tests and programs that embed Portico. Ignored with
   * more workers.
   */
  inProcess?: boolean;
}

export interface DataPlane {
  address: AddressInfo;
  /** The HTTPS listeners' addresses (apisix.ssl.listen), in their order; empty when apisix.ssl is off. */
  tlsAddresses: AddressInfo[];
  close(): Promise<void>;
  /** The snapshot requests currently see (tests, metrics). */
  snapshot(): Snapshot;
  /** The store revision this data plane has applied (every worker, with worker_processes > 1). */
  appliedRevision(): number;
  /**
   * The plugin registry changed (a reload): recompile every plugin chain from
   * it. With forked workers each worker reloads `set` itself; rejects with the
   * first worker's reason when one cannot.
   */
  pluginsChanged(set: PluginSet): Promise<void>;
  /** For /status/ready: undefined when every data-plane process serves with its config loaded, else what is missing. */
  notReady(): string | undefined;
}
