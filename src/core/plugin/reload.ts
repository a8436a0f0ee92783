/**
 * PUT /apisix/admin/plugins/reload (APISIX's apisix/admin/plugins.lua and
 * plugin.lua's load): re-read the enabled list and the external plugins'
 * code, in this process and in every data-plane process, then tell the other
 * nodes sharing the store by writing `/apisix/plugins`, the key every APISIX
 * node watches for this.
 *
 * Unlike APISIX, which answers `done` whatever happened, a set that does not
 * load is refused before anything changes (the running set keeps serving),
 * and objects whose plugin confs no longer validate against a changed schema
 * are named in the answer (their routes keep their last compiled state).
 */
import type { Logger } from 'pino';
import type { PorticoConfig } from '../config/types.js';
import { isPlainObject } from '../config/plain-object.js';
import type { DataPlane } from '../dataplane/types.js';
import { KEY_PREFIX } from '../model.js';
import type { PluginSet } from '../process/protocol.js';
import type { ConfigStore, Watcher } from '../store/types.js';
import type { SchemaType } from './contract.js';
import type { PluginInits } from './lifecycle.js';
import { PluginRegistry } from './registry.js';

/** The key APISIX's reload writes and every node watches. */
export const PLUGINS_KEY = `${KEY_PREFIX}/plugins`;

/** An object whose plugin conf fails the reloaded schema. */
export interface InvalidConf {
  readonly key: string;
  readonly error_msg: string;
}

export interface ReloadOptions {
  registry: PluginRegistry;
  inits: PluginInits;
  dataPlane: DataPlane;
  store: ConfigStore;
  /** Mutated to the reloaded set, so what starts later (a respawned worker) starts with it. */
  config: PorticoConfig;
  /** Re-reads config.yaml (main.ts); without it the set from start-up is reloaded (its code read again). */
  rereadConfig?: () => PorticoConfig;
  /** Tell other nodes through the store (not with a read-only standalone document). */
  propagate: boolean;
  logger: Logger;
}

/** Which plugin confs each stored kind holds, and which schema they are checked against. */
const CHECKED: ReadonlyArray<readonly [string, SchemaType]> = [
  ['routes', 'route'],
  ['services', 'route'],
  ['plugin_configs', 'route'],
  ['global_rules', 'route'],
  ['consumer_groups', 'route'],
  ['consumers', 'consumer'],
];

export class PluginReloader {
  /** Reloads run one at a time, in the order asked. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Our own writes of PLUGINS_KEY, by revision, so the watch does not reload a second time. */
  private readonly ownWrites = new Set<number>();
  private writing: Promise<unknown> = Promise.resolve();
  private watcher: Watcher | undefined;

  constructor(private readonly opts: ReloadOptions) {}

  /** Reloads here and in every worker, then tells the other nodes. Rejects (nothing changed) when the set does not load. */
  reload(): Promise<InvalidConf[]> {
    const run = this.queue.then(async () => {
      await this.reloadHere();
      if (this.opts.propagate) await this.announce();
      return this.invalidConfs();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Follows PLUGINS_KEY from now on: another node's reload reloads this one. */
  async watch(): Promise<void> {
    const { revision } = await this.opts.store.list(PLUGINS_KEY);
    this.watcher = this.opts.store.watch(PLUGINS_KEY, revision + 1, (events) => {
      for (const ev of events) {
        if (ev.type !== 'put' || ev.key !== PLUGINS_KEY) continue;
        const rev = ev.modRevision;
        void this.writing.then(() => {
          if (this.ownWrites.delete(rev)) return;
          const run = this.queue.then(() => this.reloadHere());
          this.queue = run.catch(() => undefined);
          run.then(
            () => this.opts.logger.info({ revision: rev }, 'plugins reloaded, as another node asked'),
            (err: unknown) => this.opts.logger.error({ err }, 'plugin reload asked by another node failed; the running set keeps serving'),
          );
        });
      }
    });
  }

  close(): void {
    this.watcher?.close();
  }

  private async reloadHere(): Promise<void> {
    const { registry, inits, dataPlane, config, rereadConfig, logger } = this.opts;
    const fresh = rereadConfig?.() ?? config;
    const set: PluginSet = { plugins: [...fresh.plugins], plugin_dirs: [...(fresh.plugin_dirs ?? [])] };
    // Throws (a PluginLoadError naming the file) before anything changes.
    const next = await PluginRegistry.load(set.plugins, set.plugin_dirs);
    await inits.update(next.list(), fresh.plugin_attr);
    registry.replace(next);
    config.plugins = set.plugins;
    config.plugin_dirs = set.plugin_dirs;
    await dataPlane.pluginsChanged(set);
    logger.info({ plugins: registry.list().map((p) => p.name) }, 'plugins reloaded');
  }

  /** Writes PLUGINS_KEY as APISIX does (a list of `{name}`), remembering the revision as ours. */
  private async announce(): Promise<void> {
    const value = this.opts.registry.list().map((p) => ({ name: p.name }));
    const write = this.opts.store.put(PLUGINS_KEY, value).then((item) => this.ownWrites.add(item.modRevision));
    this.writing = write.catch(() => undefined);
    await write;
  }

  private async invalidConfs(): Promise<InvalidConf[]> {
    const { store, registry } = this.opts;
    const out: InvalidConf[] = [];
    for (const [kind, type] of CHECKED) {
      const { items } = await store.list(`${KEY_PREFIX}/${kind}/`);
      for (const item of items) {
        const plugins = isPlainObject(item.value) ? item.value.plugins : undefined;
        if (!isPlainObject(plugins)) continue;
        for (const [name, conf] of Object.entries(plugins)) {
          if (registry.get(name) === undefined) continue;
          const err = registry.checkConf(name, conf, type);
          if (err !== undefined) out.push({ key: item.key, error_msg: err });
        }
      }
    }
    return out;
  }
}
