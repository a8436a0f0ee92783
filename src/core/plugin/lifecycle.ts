/**
 * The enabled plugins' process-wide state (their `init`, APISIX's `init` and
 * `destroy`), per plugin, so a reload re-initialises only what changed: a
 * plugin that is no longer enabled, or whose code was reloaded, is cleaned
 * up; a newly enabled or reloaded one is initialised. An unchanged definition
 * (the built-ins' modules stay loaded) keeps its state, so prometheus keeps
 * its metrics and its export listener across a reload.
 */
import type { AnyPlugin, PluginCleanup, PluginInitContext } from './contract.js';
import type { SharedStateHub } from '../process/shared-state.js';
import type { PorticoConfig } from '../config/types.js';

export type PluginInitEnv = Omit<PluginInitContext, 'attr' | 'shared'> & { shared: SharedStateHub };

/** What plugins' init() is told of config.yaml, the same in the main process and in every worker. */
export function configFacts(config: PorticoConfig): Pick<PluginInitContext, 'httpsPorts' | 'proxyCache'> {
  return {
    httpsPorts: config.apisix.ssl.enable ? config.apisix.ssl.listen.map((l) => l.port) : [],
    proxyCache: config.apisix.proxy_cache,
  };
}

export class PluginInits {
  /** Initialised definitions, in the order they were initialised, with their cleanup. */
  private readonly live = new Map<AnyPlugin, PluginCleanup | undefined>();

  constructor(
    private readonly env: PluginInitEnv,
    private pluginAttr: Readonly<Record<string, Readonly<Record<string, unknown>>>> | undefined,
  ) {}

  /**
   * Brings the initialised set to `plugins` (priority order): cleans up what
   * left, then runs init() of what is new. An init that throws rejects, after
   * the ones this call started are cleaned up again.
   */
  async update(plugins: readonly AnyPlugin[], pluginAttr = this.pluginAttr): Promise<void> {
    this.pluginAttr = pluginAttr;
    const wanted = new Set(plugins);
    for (const def of [...this.live.keys()].reverse()) if (!wanted.has(def)) await this.cleanup(def);
    const started: AnyPlugin[] = [];
    try {
      for (const def of plugins) {
        if (this.live.has(def) || def.init === undefined) continue;
        const done = await def.init({ ...this.env, attr: this.pluginAttr?.[def.name] ?? {}, shared: this.env.shared.forPlugin(def.name) });
        this.live.set(def, typeof done === 'function' ? done : undefined);
        started.push(def);
      }
    } catch (err) {
      for (const def of started.reverse()) await this.cleanup(def);
      throw err;
    }
  }

  /** Cleans up every plugin, last initialised first (the gateway closes). */
  async close(): Promise<void> {
    for (const def of [...this.live.keys()].reverse()) await this.cleanup(def);
  }

  private async cleanup(def: AnyPlugin): Promise<void> {
    const fn = this.live.get(def);
    this.live.delete(def);
    try {
      await fn?.();
    } catch (err) {
      this.env.logger.error({ err, plugin: def.name }, 'plugin cleanup failed');
    }
  }
}
