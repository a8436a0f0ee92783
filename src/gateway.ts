/**
 * Wires one gateway node: config store, plugin registry, the IPC channel to
 * the data-plane workers, Admin API and data plane. main.ts and the tests
 * both start Portico through here.
 *
 * Start-up order is what a caller may rely on: plugins' process-wide state,
 * then the data plane (resolved once every worker accepts), then the Admin
 * API, so a node whose Admin API answers already serves requests.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createLogger } from './core/log/logger.js';
import { createAdminServer } from './admin/server.js';
import type { PorticoConfig } from './core/config/types.js';
import { startDataPlane } from './core/process/launch.js';
import { listenAs } from './core/process/listen-error.js';
import type { DataPlane } from './core/dataplane/types.js';
import { createStatusServer } from './core/status/server.js';
import { createControlServer } from './core/control/server.js';
import { HEALTH_REPORTS, mergeReports } from './core/control/health.js';
import { healthReports } from './core/upstream/index.js';
import { servesInWorkers, workerCount } from './core/process/worker-count.js';
import { Channel } from './core/process/channel.js';
import { sharedStateHub } from './core/process/shared-state.js';
import { registerPubSubBackends } from './pubsub/index.js';
import { configFacts, PluginInits } from './core/plugin/lifecycle.js';
import { PluginReloader } from './core/plugin/reload.js';
import { PORTICO_VERSION } from './core/config/version.js';
import { PluginRegistry } from './core/plugin/registry.js';
import { warmCoreSchemas } from './schema/index.js';
import { resolveSecrets, type GeneratedSecret } from './core/secrets/generated-keys.js';
import { StoreUnavailableError, type ConfigStore } from './core/store/types.js';
import { KEY_PREFIX } from './core/model.js';
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
  /** The control API's listener (apisix.enable_control), unless it is off or could not listen. */
  readonly controlAddress?: AddressInfo;
  /** Keys generated at this start (first start only): say once where they are kept. */
  readonly generated: GeneratedSecret[];
  /** The store revision every data-plane process has applied (tests wait on it after a write). */
  appliedRevision(): number;
  /** Stops accepting, lets in-flight requests finish, closes the store. */
  close(): Promise<void>;
}

export type ListenerName = 'data plane' | 'data plane (HTTPS)' | 'status API' | 'control API' | 'Admin API';

/** Told as start-up goes, so a caller can say each thing when it is true. */
export interface StartReporter {
  /** Keys generated at this start (first start only), before anything listens. */
  generated?(secrets: readonly GeneratedSecret[]): void;
  /** The listener accepts connections (the data plane: every worker does). */
  listening?(what: ListenerName, address: AddressInfo): void;
}

export interface StartOptions {
  report?: StartReporter;
  logger?: Logger;
  /** Use this store instead of opening the configured one (tests). */
  store?: ConfigStore;
  /** With worker_processes 1, serve requests in this process rather than a forked worker (tests, embedding). */
  inProcess?: boolean;
  /** Re-reads config.yaml for PUT /apisix/admin/plugins/reload (its plugins and plugin_dirs); without it the start-up set is reloaded. */
  rereadConfig?: () => PorticoConfig;
}

/**
 * Loads only the configured store's client: etcd3 (with gRPC) and better-sqlite3
 * are large, and a node that never uses one should not carry it (start-up time,
 * memory, and a smaller heap for the request path to share).
 */
/** Compiles the core and plugin schemas in the background; returns the closer that stops it. */
function warmSchemas(registry: PluginRegistry, logger: Logger): () => Promise<void> {
  const steps: Array<() => void> = [warmCoreSchemas, ...registry.list().map((p) => () => registry.warmPlugin(p.name))];
  let timer: NodeJS.Immediate | undefined;
  const next = (i: number): void => {
    if (i >= steps.length) return;
    try {
      steps[i]!();
    } catch (err) {
      logger.error({ err }, 'a schema does not compile');
    }
    timer = setImmediate(next, i + 1);
  };
  timer = setImmediate(next, 0);
  return async () => clearImmediate(timer);
}

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
  try {
    return openEmbeddedStore(config.deployment.embedded.data_dir);
  } catch (err) {
    throw dataDirError(config, 'open the embedded store', err);
  }
}

/** A read-only or foreign-owned data dir is the operator's to fix: its key and path, and the cause, in one line. */
function dataDirError(config: PorticoConfig, what: string, err: unknown): Error {
  const { code, message } = err as NodeJS.ErrnoException;
  // Only the file system's and SQLite's own errors (they carry a code); a ConfigError says what it means already.
  if (err instanceof StoreUnavailableError || typeof code !== 'string') return err as Error;
  const detail = code !== undefined && !message.startsWith(code) ? `${code}: ${message}` : message;
  const dir = config.deployment.embedded.data_dir;
  return new StoreUnavailableError(`cannot ${what} in ${dir} (deployment.embedded.data_dir): ${detail}`, { cause: err });
}

/** Whether the store answers one read within `ms` (a frozen etcd accepts connections and never answers). */
function answersWithin(store: ConfigStore, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    store.get(`${KEY_PREFIX}/routes`).then(
      () => resolve(true),
      () => resolve(false),
    ).finally(() => clearTimeout(timer));
  });
}

export async function startGateway(config: PorticoConfig, opts: StartOptions = {}): Promise<Gateway> {
  const logger = opts.logger ?? createLogger('info');
  let generated: GeneratedSecret[];
  try {
    generated = resolveSecrets(config);
  } catch (err) {
    throw dataDirError(config, 'keep the generated keys', err);
  }
  if (generated.length > 0) opts.report?.generated?.(generated);
  const registry = await PluginRegistry.load(config.plugins, config.plugin_dirs);
  const store = opts.store ?? (await openStore(config, registry, logger));
  const closers: Array<() => Promise<void>> = [];
  // The workers join it as they start; closed last, settling whatever is still asked.
  const channel = new Channel({ onProblem: (problem, err) => logger.warn({ err }, problem) });
  const closeChannel = async (): Promise<void> => channel.close();
  try {
    // Plugins' process-wide state (e.g. prometheus's metrics and export server) before anything serves.
    const inWorkers = servesInWorkers(config, opts.inProcess);
    const workers = inWorkers ? workerCount(config) : 1;
    const shared = sharedStateHub({ channel, role: 'main', workers });
    const configStoreReachable = config.deployment.config_provider === 'etcd' ? () => answersWithin(store, 2_000) : undefined;
    const inits = new PluginInits(
      { logger, version: PORTICO_VERSION, process: 'main', ...configFacts(config), dataPlaneInWorkers: inWorkers, workers, shared, configStoreReachable },
      config.plugin_attr,
    );
    closers.push(() => inits.close());
    await inits.update(registry.list());
    // Up before the data plane: a readiness probe gets 503 while workers start, not a refused connection.
    let starting: DataPlane | undefined;
    let statusAddress: AddressInfo | undefined;
    if (config.apisix.status !== undefined) {
      const status = createStatusServer({ notReady: () => (starting === undefined ? 'the data plane has not started' : starting.notReady()) });
      const { ip, port } = config.apisix.status;
      await listenAs('apisix.status', ip, port, () => status.listen({ host: ip, port }));
      statusAddress = status.server.address() as AddressInfo;
      closers.push(() => status.close());
      opts.report?.listening?.('status API', statusAddress);
    }
    // In-process serving: messaging backends log through this process's logger (workers register their own).
    if (!inWorkers) registerPubSubBackends({ logger });
    const data = await startDataPlane({ config, registry, store, logger, inProcess: opts.inProcess }, channel);
    starting = data;
    closers.unshift(() => data.close());
    opts.report?.listening?.('data plane', data.address);
    for (const a of data.tlsAddresses) opts.report?.listening?.('data plane (HTTPS)', a);
    let controlAddress: AddressInfo | undefined;
    if (config.apisix.enable_control) {
      const control = createControlServer({
        store,
        registry,
        // Checkers run where requests are served: in each worker, or here when served in-process.
        health: async () => mergeReports(inWorkers ? await channel.requestAll(HEALTH_REPORTS, null) : [healthReports()]),
      });
      const { ip, port } = config.apisix.control;
      try {
        await control.listen({ host: ip, port });
        controlAddress = control.server.address() as AddressInfo;
        closers.push(() => control.close());
        opts.report?.listening?.('control API', controlAddress);
      } catch (err) {
        // A diagnostics port must not keep the node from serving traffic (APISIX's nginx would refuse to start).
        logger.warn(`control API not served: cannot listen on ${ip}:${port} (apisix.control): ${(err as Error).message}`);
        await control.close().catch(() => undefined);
      }
    }
    const standalone = store instanceof StandaloneStore ? store : undefined;
    const reloader = new PluginReloader({ registry, inits, dataPlane: data, store, config, rereadConfig: opts.rereadConfig, propagate: standalone === undefined, logger });
    // Another node's reload (written to the shared store) reloads this one; a standalone document has no such key.
    if (standalone === undefined) {
      await reloader.watch();
      closers.unshift(async () => reloader.close());
    }
    let adminAddress: AddressInfo | undefined;
    if (config.deployment.admin.enable_admin) {
      const admin = await createAdminServer({ config, store, registry, logger, standalone, reloadPlugins: () => reloader.reload() });
      const { ip, port } = config.deployment.admin.admin_listen;
      await listenAs('deployment.admin.admin_listen', ip, port, () => admin.listen({ host: ip, port }));
      adminAddress = admin.server.address() as AddressInfo;
      closers.push(() => admin.close());
      opts.report?.listening?.('Admin API', adminAddress);
      // Schemas compile on first use so the node serves sooner; compile the rest now, one per turn of the event
      // loop, so the first write of each kind does not pay for it and no request waits behind all of them.
      closers.unshift(warmSchemas(registry, logger));
    }
    closers.push(closeChannel);
    return {
      config,
      store,
      registry,
      adminAddress,
      dataAddress: data.address,
      tlsAddresses: data.tlsAddresses,
      statusAddress,
      controlAddress,
      generated,
      appliedRevision: () => data.appliedRevision(),
      async close() {
        // Data plane first so in-flight proxied requests finish, then admin, then the store.
        for (const close of closers) await close().catch((err: unknown) => logger.error({ err }, 'error while closing'));
        if (!opts.store) await store.close();
      },
    };
  } catch (err) {
    for (const close of closers) await close().catch(() => undefined);
    channel.close();
    if (!opts.store) await store.close();
    throw err;
  }
}
