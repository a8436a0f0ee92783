/**
 * STUB: discovers plugin modules in src/plugins/ and keeps the enabled ones.
 * The real implementation replaces the bodies; signatures are the contract.
 */
import type { PluginDefinition, SchemaType } from './plugin.js';

export class PluginRegistry {
  private constructor(private readonly byName: Map<string, PluginDefinition>) {}

  /** Imports every module in src/plugins/ and keeps those named in `enabled`. */
  static async load(enabled: readonly string[]): Promise<PluginRegistry> {
    void enabled;
    return new PluginRegistry(new Map());
  }

  get(name: string): PluginDefinition | undefined {
    return this.byName.get(name);
  }

  /** Enabled plugins, highest priority first (APISIX's /plugins/list order). */
  list(): PluginDefinition[] {
    return [...this.byName.values()].sort((a, b) => b.priority - a.priority);
  }

  /**
   * Validates one plugin conf; resolves to APISIX's message
   * (`unknown plugin [x]`, `failed to check the configuration of plugin x err: ...`) or undefined.
   * Fills schema defaults into `conf` only when `withDefaults` is set (the data plane does; the Admin API stores what was sent).
   */
  checkConf(name: string, conf: unknown, type: SchemaType, withDefaults = false): string | undefined {
    void name; void conf; void type; void withDefaults;
    return undefined;
  }

  /** The plugin's schema with the injected `_meta` property, as GET /apisix/admin/plugins/{name} serves it. */
  schemaFor(name: string, type: SchemaType): Record<string, unknown> | undefined {
    void name; void type;
    return undefined;
  }
}
