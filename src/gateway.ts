/**
 * Wires one gateway node: config store, plugin registry, Admin API and data
 * plane. main.ts and the tests both start Portico through here.
 */
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { createAdminServer } from './admin/server.js';
import type { PorticoConfig } from './core/config/types.js';
import { startDataPlane } from './core/process/launch.js';
import type { DataPlane } from './core/dataplane/types.js';
import { createStatusServer } from './core/status/server.js';
import { servesInWorkers, workerCount } from './core/process/worker-count.js';
import { registerKafkaPubSub } from './pubsub/index.js';
import { initPlugins } from './core/plugin/contract.js';
import { PORTICO_VERSION } from './core/config/version.js';
import { PluginRegistry } from './core/plugin/registry.js';
import { resolveSecrets, type GeneratedSecret } from './core/secrets/generated-keys.js';
import type { ConfigStore } from './core/store/types.js';
import { StandaloneStore } from './core/store/standalone.js';
import type { DocumentValidator } from './core/store/standalone-doc.js';
import { validateConfiguration } from './admin/config-validate.js';

export interface Gateway {
  readonly config: PorticoConfig;
  readonly store: ConfigStore;
  readonly registry: PluginRegistry;
  readonly adminAddress?: AddressInfo;
  readonly dataAddress: AddressInfo;
  /** The HTTPS listeners (apisix.ssl.listen), in order; empty when apisix.ssl is off. */
  readonly tlsAddresses: AddressInfo[];
  /** apisix.status's listener, when configured. */
  readonly statusAddress?: AddressInfo;
  /** Keys generated at this start (first start only): print them once. */
  readonly generated: GeneratedSecret[];
  /** Stops accepting, lets in-flight requests finish, closes the store. */
  close(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  /** Use this store instead of opening the configured one (tests). */
  store?: ConfigStore;
  /** With worker_processes 1, serve requests in this process rather than a forked worker (tests, embedding). */
  inProcess?: boolean;
}

/**
 * Loads only the configured store's client: etcd3 (with gRPC) and better-sqlite3
 * are large, and a node that never uses one should not carry it (start-up time,
 * memory, and a smaller heap for the request path to share).
 */
async function openStore(config: PorticoConfig, registry: PluginRegistry, logger: Logger): Promise<ConfigStore> {
  const { config_provider: provider, role } = config.deployment;
  if (provider === 'yaml' || provider === 'json') {
    if (role !== 'data_plane') return new StandaloneStore();
    const { openStandaloneFile } = await import('./core/store/standalone-file.js');
    // The file is checked as the Admin API checks a write; the core is handed the check, not the admin module.
    const validate: DocumentValidator = (doc) => validateConfiguration(doc, registry);
    return openStandaloneFile({ file: config.deployment.standalone_file!, format: provider, validate, logger });
  }
  if (provider === 'etcd') {
    const { EtcdStore } = await import('./core/store/etcd.js');
    const { host, prefix, timeout } = config.deployment.etcd;
    return new EtcdStore({ hosts: host, prefix, timeout });
  }
  const { openEmbeddedStore } = await import('./core/store/embedded.js');
  return openEmbeddedStore(config.deployment.embedded.data_dir);
}

export async function startGateway(config: PorticoConfig, opts: StartOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? pino({ level: 'info' });
  const generated = resolveSecrets(config);
  const registry = await PluginRegistry.load(config.plugins);
  const store = opts.store ?? (await openStore(config, registry, logger));
  const closers: Array<() => Promise<void>> = [];
  try {
    // Plugins' process-wide state (e.g. prometheus's metrics and export server) before anything serves.
    const inWorkers = servesInWorkers(config, opts.inProcess);
    closers.push(
      await initPlugins(registry.list(), config.plugin_attr, {
        logger,
        version: PORTICO_VERSION,
        process: 'main',
        dataPlaneInWorkers: inWorkers,
        workers: inWorkers ? workerCount(config) : 1,
      }),
    );
    let adminAddress: AddressInfo | undefined;
    if (config.deployment.admin.enable_admin) {
      const standalone = store instanceof StandaloneStore ? store : undefined;
      const admin = await createAdminServer({ config, store, registry, logger, standalone });
      const { ip, port } = config.deployment.admin.admin_listen;
      await admin.listen({ host: ip, port });
      adminAddress = admin.server.address() as AddressInfo;
      closers.push(() => admin.close());
    }
    // Up before the data plane: a readiness probe gets 503 while workers start, not a refused connection.
    let data: DataPlane | undefined;
    let statusAddress: AddressInfo | undefined;
    if (config.apisix.status !== undefined) {
      const status = createStatusServer({ notReady: () => (data === undefined ? 'the data plane has not started' : data.notReady()) });
      await status.listen({ host: config.apisix.status.ip, port: config.apisix.status.port });
      statusAddress = status.server.address() as AddressInfo;
      closers.push(() => status.close());
    }
    // In-process serving: messaging backends log through this process's logger (workers register their own).
    if (!inWorkers) registerKafkaPubSub({ logger });
    data = await startDataPlane({ config, registry, store, logger, inProcess: opts.inProcess });
    const started = data;
    closers.unshift(() => started.close());
    return {
      config,
      store,
      registry,
      adminAddress,
      dataAddress: data.address,
      tlsAddresses: data.tlsAddresses,
      statusAddress,
      generated,
      async close() {
        // Data plane first so in-flight proxied requests finish, then admin, then the store.
        for (const close of closers) await close().catch((err: unknown) => logger.error({ err }, 'error while closing'));
        if (!opts.store) await store.close();
      },
    };
  } catch (err) {
    for (const close of closers) await close().catch(() => undefined);
    if (!opts.store) await store.close();
    throw err;
  }
}
