/**
 * Plugin confs → chain entries, at config-change time: each conf decrypted
 * (data_encryption), validated with defaults filled, its `$env://` references
 * resolved, passed through the plugin's compile(), and its `_meta` (disable,
 * priority, filter, error_response) applied. Global rules become one chain.
 */
import type { Logger } from 'pino';
import type { PluginConfMap } from '../model.js';
import type { CompileEnv, SchemaType } from '../plugin/contract.js';
import type { PluginUpstream, Vars } from '../plugin/ctx.js';
import type { UpstreamConf } from '../model.js';
import type { UpstreamRuntime } from '../upstream/types.js';
import type { CompiledUpstream } from './types.js';
import { compileUpstream } from './upstreams.js';
import { buildChain, type ChainEntry, type PluginChain } from '../plugin/pipeline.js';
import type { PluginRegistry } from '../plugin/registry.js';
import { decryptConf } from '../secrets/encryption.js';
import { resolveSecretRefs } from '../secrets/refs.js';
import { compileExpr } from '../match/expr.js';
import type { PluginLookup } from './types.js';

/** Thrown while compiling an object that must be left out of the snapshot; the message says why. */
export class SkipObject extends Error {}

/** Runs `fn`; an object that fails to compile is logged and left out (undefined), as APISIX's sync does. */
export function tryCompile<T>(logger: Logger, key: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    logger.warn({ key, err: err instanceof SkipObject ? err.message : err }, 'config: skipping invalid object');
    return undefined;
  }
}

type PluginMeta = { disable?: boolean; priority?: number; filter?: unknown[]; error_response?: unknown } | undefined;

export class PluginConfCompiler {
  /**
   * Upstreams built for plugin confs, by content: a route edit that leaves a
   * traffic-split upstream as it was keeps its pools and health state.
   */
  private readonly pluginUpstreams = new Map<string, CompiledUpstream>();
  private pluginUpstreamSeq = 0;

  constructor(
    private readonly registry: PluginLookup,
    private readonly logger: Logger,
    /** apisix.data_encryption.keyring; empty when encryption is off (upstreams read it too, for their client keys). */
    readonly keyring: readonly string[],
  ) {}

  /**
   * Compiles a plugins map into chain entries; an invalid conf skips the whole object, as APISIX's sync does.
   * `validated` collects each conf as validated (before the plugin's compile), for auth plugins' consumer tables.
   */
  entries(plugins: PluginConfMap | undefined, type: SchemaType, fromConsumer = false, validated?: PluginConfMap): ChainEntry[] {
    const out: ChainEntry[] = [];
    if (!plugins) return out;
    const { registry, logger, keyring } = this;
    for (const name of Object.keys(plugins)) {
      const raw = plugins[name];
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SkipObject(`invalid plugin conf for plugin [${name}]`);
      const def = registry.get(name);
      if (!def) {
        logger.warn({ plugin: name }, 'config: unknown plugin skipped');
        continue;
      }
      const meta = raw._meta as PluginMeta;
      if (meta?.disable === true) continue;
      let conf = structuredClone(raw);
      // Stored encrypted (data_encryption); phases need the plain values. Values no key opens stay as stored.
      if (keyring.length > 0 && def.encrypt_fields?.length) {
        conf = decryptConf(name, conf, registry as PluginRegistry, keyring, () =>
          // As APISIX warns: most often a node whose keyring differs from the one that wrote the value.
          logger.warn({ plugin: name }, 'config: an encrypted plugin field does not decrypt with apisix.data_encryption.keyring (nodes sharing a store must share the keyring); used as stored'),
        );
      }
      const err = registry.checkConf(name, conf, type, true);
      if (err !== undefined) throw new SkipObject(err);
      conf = resolveSecretRefs(conf, name, logger);
      if (validated !== undefined) validated[name] = conf;
      let upstreams: PluginUpstream[] | undefined;
      const env: CompileEnv = {
        upstream: (up) => {
          const built = this.pluginUpstream(up);
          (upstreams ??= []).push(built);
          return built;
        },
      };
      // The conf passed the plugin's schema, which is what its `Conf` type describes.
      const compiled = def.compile ? def.compile(conf as never, env) : conf;
      out.push({
        upstreams,
        name,
        def,
        conf: compiled,
        priority: typeof meta?.priority === 'number' ? meta.priority : def.priority,
        filter: metaFilter(meta),
        errorResponse: meta?.error_response,
        fromConsumer,
      });
    }
    return out;
  }

  private pluginUpstream(conf: UpstreamConf): CompiledUpstream {
    const contentKey = JSON.stringify(conf);
    let built = this.pluginUpstreams.get(contentKey);
    if (built === undefined) {
      // A plugin's inline upstream has no store id; APISIX keys it by the conf, as this map does.
      built = compileUpstream({ ...conf, id: undefined }, `plugin#upstream#${++this.pluginUpstreamSeq}`, contentKey, this.keyring);
      this.pluginUpstreams.set(contentKey, built);
    }
    return built;
  }

  /** Forgets plugin upstreams no served config holds any more (their runtimes retire with the snapshot). */
  keepPluginUpstreams(live: ReadonlySet<UpstreamRuntime>): void {
    for (const [k, u] of this.pluginUpstreams) if (u.runtime === undefined || !live.has(u.runtime)) this.pluginUpstreams.delete(k);
  }

  /** All global rules as one chain; a plugin in more than one rule runs in none (APISIX). */
  globalChain(rules: ReadonlyMap<string, { readonly value: Record<string, unknown> }>): PluginChain {
    const seen = new Map<string, number>();
    for (const item of rules.values()) {
      const plugins = (item.value.plugins ?? {}) as PluginConfMap;
      for (const name of Object.keys(plugins)) seen.set(name, (seen.get(name) ?? 0) + 1);
    }
    const entries: ChainEntry[] = [];
    for (const [id, item] of rules) {
      const plugins = { ...((item.value.plugins ?? {}) as PluginConfMap) };
      for (const name of Object.keys(plugins)) {
        if (seen.get(name)! > 1) {
          this.logger.error({ plugin: name }, 'config: plugin found in more than one global rule; not run');
          delete plugins[name];
        }
      }
      const compiled = tryCompile(this.logger, `/apisix/global_rules/${id}`, () => this.entries(plugins, 'route'));
      if (compiled) entries.push(...compiled);
    }
    return buildChain(entries);
  }
}

/** `_meta.filter`, compiled; APISIX: an expression that fails to evaluate lets the plugin run. */
function metaFilter(meta: PluginMeta): ((vars: Vars) => boolean) | undefined {
  if (!Array.isArray(meta?.filter) || meta.filter.length === 0) return undefined;
  const expr = compileExpr(meta.filter);
  return (vars) => {
    try {
      return expr(vars);
    } catch {
      return true;
    }
  };
}
