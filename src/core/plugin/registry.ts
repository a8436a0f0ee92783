/**
 * Discovers plugin modules in src/plugins/ (one default-exported
 * PluginDefinition per top-level file), and those in config.yaml's
 * `plugin_dirs` (external.ts), and keeps the enabled ones, so adding
 * a plugin never touches the core. Only the top-level files are plugins:
 * folders (src/plugins/lib/ for shared helpers, `<plugin>/` for the rest of a
 * multi-file plugin) are never loaded by discovery. Each plugin's schemas get APISIX's injected `_meta`
 * property and are compiled once here, at load time.
 */
import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import type { AnyPlugin, JsonSchema, SchemaType } from './contract.js';
import { loadExternalPlugins, PluginLoadError, type ExternalPlugin } from './external.js';
import { compileExpr } from '../match/expr.js';
import { compileSchema, type CompiledSchema } from '../../schema/compile.js';
import { injectMeta } from '../../schema/plugin-meta.js';

interface LoadedPlugin {
  def: AnyPlugin;
  /** `schema` with `_meta` injected: what route/service/global-rule confs are checked against. */
  schema: JsonSchema;
  route: CompiledSchema;
  consumer?: CompiledSchema;
  metadata?: CompiledSchema;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPluginDefinition(v: unknown): v is AnyPlugin {
  return isObject(v) && typeof v.name === 'string' && typeof v.priority === 'number' && isObject(v.schema);
}

/** Running from source (vitest, tsx) the modules are .ts; compiled, they are .js. */
function pluginFileFilter(): (file: string) => boolean {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return (f) => f.endsWith(ext) && !f.endsWith('.d.ts') && !f.endsWith('.test.ts');
}

async function discover(dir: URL): Promise<AnyPlugin[]> {
  const path = fileURLToPath(dir);
  let files: string[];
  try {
    const isPluginFile = pluginFileFilter();
    files = (await readdir(path, { withFileTypes: true }))
      .filter((e) => e.isFile() && isPluginFile(e.name))
      .map((e) => e.name)
      .sort();
  } catch (err) {
    console.warn(`[plugin-registry] cannot read plugin directory ${path}: ${(err as Error).message}`);
    return [];
  }
  const found: AnyPlugin[] = [];
  for (const file of files) {
    try {
      const mod = (await import(pathToFileURL(join(path, file)).href)) as { default?: unknown };
      if (isPluginDefinition(mod.default)) found.push(mod.default);
      else console.warn(`[plugin-registry] ${file} does not default-export a plugin; helpers belong in src/plugins/lib/ or the plugin's folder`);
    } catch (err) {
      // One broken plugin file must not keep the gateway from starting.
      console.warn(`[plugin-registry] failed to load ${file}: ${(err as Error).message}`);
    }
  }
  return found;
}

/** `lazy`: schemas compile on first check or warm() (a process checks only the plugins it meets). */
function prepare(def: AnyPlugin, lazy = false): LoadedPlugin | string {
  const schema = injectMeta(def.schema);
  if (typeof schema === 'string') return schema;
  const opts = { lazy };
  try {
    return {
      def,
      schema,
      route: compileSchema(schema, 'everywhere', opts),
      consumer: def.consumer_schema ? compileSchema(def.consumer_schema, 'everywhere', opts) : undefined,
      metadata: def.metadata_schema ? compileSchema(def.metadata_schema, 'everywhere', opts) : undefined,
    };
  } catch (err) {
    return `invalid schema: ${(err as Error).message}`;
  }
}

/**
 * An external plugin is held to the contract strictly: what a built-in gets
 * away with as a warning (its author runs the test suite) stops start-up here.
 */
function checkExternal(found: ExternalPlugin, builtins: ReadonlySet<string>, seen: Map<string, string>): AnyPlugin {
  const def = found.def as Record<string, unknown>;
  const fail = (reason: string): never => {
    throw new PluginLoadError(found.file, reason);
  };
  if (typeof def.name !== 'string' || def.name === '') fail('the plugin definition has no name');
  const name = def.name as string;
  if (typeof def.priority !== 'number' || !Number.isFinite(def.priority)) fail(`plugin ${name} has no priority (a number)`);
  if (!isObject(def.schema)) fail(`plugin ${name} has no schema (an object)`);
  if (builtins.has(name)) fail(`plugin name ${name} clashes with a built-in plugin`);
  const other = seen.get(name);
  if (other !== undefined) fail(`plugin name ${name} is already defined by ${other}`);
  seen.set(name, found.file);
  return def as unknown as AnyPlugin;
}

export class PluginRegistry {
  private sorted: AnyPlugin[];
  /** Bumped by replace(): compiled config built from older definitions must be rebuilt. */
  generation = 0;

  private constructor(private byName: Map<string, LoadedPlugin>) {
    this.sorted = PluginRegistry.order(byName);
  }

  private static order(byName: Map<string, LoadedPlugin>): AnyPlugin[] {
    return [...byName.values()].map((p) => p.def).sort((a, b) => b.priority - a.priority);
  }

  /**
   * Imports every module in src/plugins/ and in `pluginDirs` (config.yaml's
   * plugin_dirs) and keeps those named in `enabled`. Rejects with a
   * PluginLoadError naming the file when an external plugin does not load,
   * lacks a name or priority, clashes with another plugin's name or has an
   * invalid schema, enabled or not.
   */
  static async load(enabled: readonly string[], pluginDirs: readonly string[] = []): Promise<PluginRegistry> {
    const builtins = await discover(new URL('../../plugins/', import.meta.url));
    const external = await loadExternalPlugins(pluginDirs);
    // Built-in schemas are compiled by the test suite (t/schema), external ones just below, each refused naming its
    // file: the registry itself compiles on first use, so a process compiles only the plugins it meets.
    if (external.length === 0) return PluginRegistry.fromDefinitions(builtins, enabled, { lazy: true });
    const builtinNames = new Set(builtins.map((d) => d.name));
    const seen = new Map<string, string>();
    const defs = external.map((found) => {
      const def = checkExternal(found, builtinNames, seen);
      const prepared = prepare(def);
      if (typeof prepared === 'string') throw new PluginLoadError(found.file, `plugin ${def.name}: ${prepared}`);
      return def;
    });
    return PluginRegistry.fromDefinitions([...builtins, ...defs], enabled, { lazy: true });
  }

  /**
   * Takes over `next`'s plugins (a reload): every holder of this registry
   * (Admin API checks, snapshot compilation) sees the new set from now on;
   * chains compiled before keep the definitions they were built with.
   */
  replace(next: PluginRegistry): void {
    this.byName = next.byName;
    this.sorted = PluginRegistry.order(next.byName);
    this.generation++;
  }

  /**
   * Builds a registry from definitions at hand (tests, embedders); `enabled` filters them as load() does.
   * Schemas compile now (a broken one is skipped with a warning) unless `lazy`.
   */
  static fromDefinitions(defs: readonly AnyPlugin[], enabled: readonly string[], opts: { lazy?: boolean } = {}): PluginRegistry {
    const wanted = new Set(enabled);
    const byName = new Map<string, LoadedPlugin>();
    for (const def of defs) {
      if (!wanted.has(def.name) || byName.has(def.name)) continue;
      const loaded = prepare(def, opts.lazy === true);
      if (typeof loaded === 'string') {
        console.warn(`[plugin-registry] skipping plugin [${def.name}]: ${loaded}`);
        continue;
      }
      byName.set(def.name, loaded);
    }
    // One line for all of them: APISIX's full plugin list names about ninety Portico does not have.
    const missing = [...wanted].filter((name) => !byName.has(name));
    if (missing.length > 0) console.warn(`[plugin-registry] plugins enabled in the config but not provided by Portico, skipped: ${missing.join(', ')}`);
    return new PluginRegistry(byName);
  }

  get(name: string): AnyPlugin | undefined {
    return this.byName.get(name)?.def;
  }

  /** Compiles an enabled plugin's schemas now (throws if one is broken). */
  warmPlugin(name: string): void {
    const p = this.byName.get(name);
    p?.route.warm();
    p?.consumer?.warm();
    p?.metadata?.warm();
  }

  /** Enabled plugins, highest priority first (APISIX's /plugins/list order). */
  list(): AnyPlugin[] {
    return [...this.sorted];
  }

  /**
   * Validates one plugin conf; resolves to APISIX's message
   * (`unknown plugin [x]`, `failed to check the configuration of plugin x err: ...`) or undefined.
   * Fills schema defaults into `conf` only when `withDefaults` is set (the data plane does; the Admin API stores what was sent).
   */
  checkConf(name: string, conf: unknown, type: SchemaType, withDefaults = false): string | undefined {
    if (!isObject(conf)) return `invalid plugin conf ${JSON.stringify(conf) ?? 'null'} for plugin [${name}]`;
    const plugin = this.byName.get(name);
    if (!plugin) return `unknown plugin [${name}]`;

    const err = this.checkSchema(plugin, conf, type, withDefaults);
    // A disabled plugin never runs, so a conf that only fails here (say, an
    // environment-specific value) must not make the whole object invalid.
    if (err !== undefined && !(isObject(conf._meta) && conf._meta.disable === true)) {
      return `failed to check the configuration of plugin ${name} err: ${err}`;
    }

    const meta = conf._meta;
    if (isObject(meta) && meta.filter !== undefined) {
      try {
        compileExpr(meta.filter);
      } catch (e) {
        return `failed to validate the 'vars' expression: ${(e as Error).message}`;
      }
    }
    return undefined;
  }

  /**
   * The plugin's schema check plus its own check(); the raw message without
   * the `failed to check...` prefix (what APISIX's `plugin.check_schema` returns).
   */
  checkSchemaOnly(name: string, conf: unknown, type: SchemaType = 'route'): string | undefined {
    const plugin = this.byName.get(name);
    if (!plugin) return `unknown plugin [${name}]`;
    return this.checkSchema(plugin, conf, type, false);
  }

  private checkSchema(plugin: LoadedPlugin, conf: unknown, type: SchemaType, withDefaults: boolean): string | undefined {
    let compiled: CompiledSchema | undefined;
    if (type === 'consumer') compiled = plugin.consumer ?? plugin.route;
    else if (type === 'metadata') compiled = plugin.metadata; // none declared: any object (APISIX injects an empty one)
    else compiled = plugin.route;
    // Like APISIX, the plugin's own check sees the conf with defaults filled;
    // the Admin API's copy is thrown away so what is stored is what was sent.
    const target = withDefaults ? conf : structuredClone(conf);
    const err = compiled?.checkWithDefaults(target);
    if (err !== undefined) return err;
    // The conf passed the plugin's schema, which is what its `Conf` type describes.
    return plugin.def.check?.(target as never, type);
  }

  /** The plugin's schema with the injected `_meta` property, as GET /apisix/admin/plugins/{name} serves it. */
  schemaFor(name: string, type: SchemaType): Record<string, unknown> | undefined {
    const plugin = this.byName.get(name);
    if (!plugin) return undefined;
    if (type === 'consumer') return plugin.def.consumer_schema;
    if (type === 'metadata') return plugin.def.metadata_schema;
    return plugin.schema;
  }
}
