/**
 * The data plane's view of the store: raw objects kept from list + watch, and
 * the compiled snapshot every request reads. A change recompiles once per
 * batch (the same tick) into a new immutable Snapshot that replaces the old
 * one in a single assignment, so a request sees one consistent config from
 * match to log.
 *
 * Reuse across generations: each compiled object remembers the store
 * revisions it was built from (its `revKey`). The next compile takes the
 * previous generation's object whenever that key is unchanged (reuse.ts), so
 * an untouched route keeps its chain, an untouched upstream keeps its pools
 * and health state, and a reload of identical data swaps nothing at all.
 *
 * This file feeds the store mirror (mirror.ts) and holds the order of
 * compilation; each kind of object compiles in its own file: plugins.ts
 * (plugin confs, global rules), consumers.ts, routes.ts, upstreams.ts (and
 * retiring their runtimes).
 */
import type { Logger } from 'pino';
import type { PorticoConfig } from '../config/types.js';
import type { ConsumerConf, RouteConf, UpstreamConf, PluginConfMap } from '../model.js';
import { KEY_PREFIX } from '../model.js';
import { EMPTY_CHAIN } from '../plugin/pipeline.js';
import type { WatchEvent, Watcher } from '../store/types.js';
import { StoreMirror, type MirroredItem } from './mirror.js';
import { boundsViolation } from '../../schema/index.js';
import type { UpstreamRuntime } from '../upstream/types.js';
import { compileIpMatcher } from '../match/ip-match.js';
import { ConfigError } from '../config/project-root.js';
import { compileRouter, routerOptionsFor } from '../match/router.js';
import type { CompiledConsumerGroup, CompiledRoute, CompiledUpstream, ConfigFeed, PluginLookup, Snapshot } from './types.js';
import { PluginConfCompiler, tryCompile } from './plugins.js';
import { compileConsumer, compileCredential, CREDENTIAL_ID, feedConsumers } from './consumers.js';
import { compileRoute } from './routes.js';
import { compileUpstream, RetiringUpstreams, runtimesOf } from './upstreams.js';
import { reuseOrBuild } from './reuse.js';
import { EMPTY_SNI_TABLE, nextSniTable, type SniCompileEnv } from '../tls/sni-table.js';
import { tlsBaseOptions } from '../tls/options.js';

export type * from './types.js';
export { consumerChain } from './routes.js';

// ---- the store mirror ----------------------------------------------------

type RawItem = MirroredItem;
type RawTable = ReadonlyMap<string, RawItem>;

/** The tables the data plane compiles from; the rest of the store (protos, ...) is not mirrored here. */
const KEPT = ['routes', 'services', 'upstreams', 'consumers', 'consumer_groups', 'global_rules', 'plugin_configs', 'plugin_metadata', 'ssls'] as const;
type RawTables = Record<(typeof KEPT)[number], RawTable>;
const PREFIX = KEY_PREFIX + '/';

export interface SnapshotOptions {
  registry: PluginLookup;
  config: PorticoConfig;
  logger: Logger;
  /** Called after each swap (tests, metrics). */
  onSwap?: (snapshot: Snapshot) => void;
}

export class ConfigSnapshot {
  current: Snapshot;
  private readonly mirror: StoreMirror;
  /** The mirror's tables, looked up once. */
  private readonly raw: RawTables;
  /** Store revision the last compile saw, whether or not anything changed. */
  appliedRevision = 0;
  private scheduled = false;
  private watcher: Watcher | undefined;
  private closed = false;
  private readonly retiring: RetiringUpstreams;
  /** Routes' inline upstreams by route key (routes.ts). */
  private readonly inlineUpstreams = new Map<string, CompiledUpstream>();
  private consumersFed = false;
  private globalRevKey = '';
  private readonly trustedPeer: (ip: string) => boolean;
  private readonly plugins: PluginConfCompiler;
  /** Undefined when apisix.ssl is off: the ssls objects are then not compiled at all. */
  private readonly sni: SniCompileEnv | undefined;

  constructor(private readonly opts: SnapshotOptions) {
    const ssl = opts.config.apisix.ssl;
    this.sni = ssl?.enable ? { logger: opts.logger, keyring: opts.config.apisix.data_encryption?.keyring ?? [], base: tlsBaseOptions(ssl) } : undefined;
    this.retiring = new RetiringUpstreams(opts.logger);
    this.plugins = new PluginConfCompiler(opts.registry, opts.logger, opts.config.apisix.data_encryption?.keyring ?? []);
    this.mirror = new StoreMirror({
      tables: KEPT,
      onIgnored: (key) => opts.logger.warn({ key }, 'config: ignoring a non-object value'),
      // The Admin API refuses these (src/schema/limits.ts); etcd written directly may still hold one.
      refuse: boundsViolation,
      onRefused: (key, reason) => opts.logger.warn({ key, err: reason }, 'config: skipping invalid object'),
    });
    this.raw = Object.fromEntries(KEPT.map((name) => [name, this.mirror.table(name)])) as RawTables;
    const trusted = opts.config.apisix.trusted_addresses ?? [];
    try {
      this.trustedPeer = trusted.length === 0 ? () => false : compileIpMatcher(trusted);
    } catch (err) {
      throw new ConfigError(`apisix.trusted_addresses: ${(err as Error).message}`);
    }
    this.current = {
      trustedPeer: this.trustedPeer,
      revision: 0,
      version: 0,
      router: compileRouter<CompiledRoute>([]),
      routes: new Map(),
      upstreams: new Map(),
      consumers: new Map(),
      consumerGroups: new Map(),
      credentials: new Map(),
      globalChain: EMPTY_CHAIN,
      pluginMetadata: new Map(),
      tls: EMPTY_SNI_TABLE,
    };
  }

  /** Lists everything under /apisix/, compiles, then follows changes from the next revision. */
  async start(feed: ConfigFeed): Promise<void> {
    const listing = await feed.list(PREFIX);
    this.mirror.reset(listing.items, listing.revision);
    this.compile();
    if (this.closed) return;
    this.watcher = feed.watch(PREFIX, listing.revision + 1, (events, revision) => this.apply(events, revision));
  }

  /** Applies one batch of watch events; compilation runs once for all batches of this tick. */
  apply(events: readonly WatchEvent[], revision: number): void {
    this.mirror.apply(events, revision);
    for (const ev of events) {
      if (ev.type === 'reset') this.opts.logger.warn({ objects: ev.items.length }, 'config: store watch resynchronised from a full listing');
    }
    this.schedule();
  }

  /**
   * The registry's plugin set was reloaded: every chain is rebuilt from the new
   * definitions (their generation is part of each revKey). Requests in flight
   * keep the snapshot, and so the code, they started with.
   */
  pluginsChanged(): void {
    // Now, not on the next tick: the reload answers once every process serves the new set.
    if (!this.closed) this.compile();
  }

  private schedule(): void {
    if (!this.scheduled && !this.closed) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        if (!this.closed) this.compile();
      });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    const all = new Set<UpstreamRuntime>([...this.retiring.drain(), ...runtimesOf(this.current)]);
    await Promise.all([...all].map((r) => r.close().catch(() => undefined)));
  }

  // ---- compilation -------------------------------------------------------

  /** Rebuilds the snapshot, reusing every compiled object whose inputs did not change. */
  compile(): void {
    const prev = this.current;
    this.appliedRevision = this.mirror.revision;
    const { logger } = this.opts;
    const plugins = this.plugins;
    let changed = false;
    // Objects that hold plugin confs are rebuilt when the plugin set changes.
    const gen = `#g${this.opts.registry.generation ?? 0}`;

    const upstreams = reuseOrBuild(
      prev.upstreams,
      this.raw.upstreams,
      (_id, item) => String(item.modRevision),
      (id, item, revKey) => {
        const key = `/apisix/upstreams/${id}`;
        return tryCompile(logger, key, () => compileUpstream({ ...(item.value as UpstreamConf), id }, key, revKey, plugins.keyring));
      },
    );
    changed ||= upstreams.changed;

    // Consumer groups first: a consumer's compiled plugins include its group's. A group change
    // shows as a change of its consumers (its revision is part of theirs).
    const consumerGroups = reuseOrBuild<RawItem, CompiledConsumerGroup>(
      prev.consumerGroups,
      this.raw.consumer_groups,
      (_id, item) => String(item.modRevision) + gen,
      (id, item, revKey) =>
        tryCompile(logger, `/apisix/consumer_groups/${id}`, () => ({
          revKey,
          entries: plugins.entries(item.value.plugins as PluginConfMap | undefined, 'route', true),
        })),
    ).compiled;

    // A consumer's credentials live under its key; they are compiled once the consumers are.
    const groupOf = (item: RawItem) => {
      const groupId = item.value.group_id;
      return groupId === undefined || groupId === null ? undefined : { group: consumerGroups.get(String(groupId)) };
    };
    const consumers = reuseOrBuild(
      prev.consumers,
      this.raw.consumers,
      (id, item) => {
        if (id.includes('/')) return undefined;
        const g = groupOf(item);
        return g === undefined ? String(item.modRevision) + gen : `${item.modRevision}/${g.group?.revKey ?? 'missing' + gen}`;
      },
      (id, item, revKey) => {
        const g = groupOf(item);
        return tryCompile(logger, `/apisix/consumers/${id}`, () =>
          compileConsumer(plugins, item.value as unknown as ConsumerConf, revKey, g?.group, g !== undefined && g.group === undefined),
        );
      },
      (_id, compiled) => compiled.conf.username,
    );
    const ownerOf = (id: string) => {
      const m = CREDENTIAL_ID.exec(id);
      // A credential without its consumer identifies nobody (APISIX logs it as a wild credential).
      const owner = m === null ? undefined : consumers.compiled.get(m[1]!);
      return owner === undefined ? undefined : { owner, credentialId: m![2]! };
    };
    const credentials = reuseOrBuild(
      prev.credentials,
      [...this.raw.consumers].filter(([id]) => id.includes('/')),
      (id, item) => {
        const o = ownerOf(id);
        return o === undefined ? undefined : `${item.modRevision}/${o.owner.revKey}`;
      },
      (id, item, revKey) => {
        const o = ownerOf(id)!;
        return tryCompile(logger, `/apisix/consumers/${id}`, () => compileCredential(plugins, o.owner, o.credentialId, item.value, revKey));
      },
    );
    const consumersChanged = consumers.changed || credentials.changed;
    if (consumersChanged || !this.consumersFed) {
      this.consumersFed = true;
      feedConsumers(this.opts.registry, logger, consumers.compiled, credentials.compiled);
    }
    changed ||= consumersChanged;

    const globalRevKey = [...this.raw.global_rules].map(([id, i]) => `${id}@${i.modRevision}`).join(',') + gen;
    let globalChain = prev.globalChain;
    if (globalRevKey !== this.globalRevKey) {
      this.globalRevKey = globalRevKey;
      globalChain = plugins.globalChain(this.raw.global_rules);
      changed = true;
    }

    const referenced = (conf: RouteConf) => ({
      service: conf.service_id !== undefined ? this.raw.services.get(String(conf.service_id)) : undefined,
      pc: conf.plugin_config_id !== undefined ? this.raw.plugin_configs.get(String(conf.plugin_config_id)) : undefined,
    });
    const routes = reuseOrBuild(
      prev.routes,
      this.raw.routes,
      (_id, item) => {
        const conf = item.value as RouteConf;
        if (conf.status === 0) return undefined;
        const { service, pc } = referenced(conf);
        return `${item.modRevision}|${service?.modRevision ?? '-'}|${pc?.modRevision ?? '-'}${gen}`;
      },
      (id, item, revKey) => {
        const conf = item.value as RouteConf;
        const { service, pc } = referenced(conf);
        const key = `/apisix/routes/${id}`;
        const built = tryCompile(logger, key, () => compileRoute(plugins, this.inlineUpstreams, id, key, revKey, conf, service, pc));
        if (built !== undefined) return built;
        // Unchanged but no longer valid after a plugin reload (a schema changed under it): it keeps serving as
        // compiled before, with the code it was compiled with, until it is edited (the reload's answer lists it).
        const old = prev.routes.get(id);
        return old !== undefined && withoutGeneration(old.revKey) === withoutGeneration(revKey) ? { ...old, revKey } : undefined;
      },
    );
    changed ||= routes.changed;

    const pluginMetadata = new Map<string, Record<string, unknown>>();
    for (const [id, item] of this.raw.plugin_metadata) pluginMetadata.set(id, item.value);
    if (!sameMetadata(prev.pluginMetadata, pluginMetadata)) changed = true;

    const tls = this.sni === undefined ? prev.tls : nextSniTable(this.raw.ssls, prev.tls, this.sni);
    if (tls !== prev.tls) changed = true;

    if (!changed) return;

    let router = prev.router;
    if (routes.changed) {
      router = compileRouter<CompiledRoute>(
        // The merged conf carries the service's hosts as the fallback already.
        // Sorted by id so ties resolve the same way after every restart and on every worker.
        [...routes.compiled.values()]
          .sort((a, b) => (a.conf.id < b.conf.id ? -1 : a.conf.id > b.conf.id ? 1 : 0))
          .map((r) => ({ id: r.conf.id, route: r.conf, data: r })),
        // apisix.router.http, validated at load: an unknown name never gets here.
        routerOptionsFor(this.opts.config.apisix.router?.http ?? 'radixtree_host_uri'),
      );
      for (const e of router.errors) logger.warn({ route: e.id, error: e.error }, 'config: route left out of the router');
    }
    const next: Snapshot = {
      trustedPeer: this.trustedPeer,
      revision: this.mirror.revision,
      version: prev.version + 1,
      router,
      routes: routes.compiled,
      upstreams: upstreams.compiled,
      consumers: consumers.compiled,
      consumerGroups,
      credentials: credentials.compiled,
      globalChain,
      pluginMetadata: sameMetadata(prev.pluginMetadata, pluginMetadata) ? prev.pluginMetadata : pluginMetadata,
      tls,
    };
    this.current = next;
    // Inline upstreams of routes that are gone (or lost theirs) are forgotten; their runtimes retire below.
    const liveInline = new Set<string>();
    for (const r of routes.compiled.values()) if (r.upstream) liveInline.add(r.key);
    for (const k of [...this.inlineUpstreams.keys()]) if (!liveInline.has(k)) this.inlineUpstreams.delete(k);
    this.retiring.retire(prev, next);
    this.plugins.keepPluginUpstreams(runtimesOf(next));
    this.opts.onSwap?.(next);
  }
}

function withoutGeneration(revKey: string): string {
  const at = revKey.lastIndexOf('#g');
  return at < 0 ? revKey : revKey.slice(0, at);
}

function sameMetadata(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
