/**
 * The data plane's view of the store: raw objects kept from list + watch, and
 * the compiled snapshot every request reads. A change recompiles once per
 * batch (the same tick) into a new immutable Snapshot that replaces the old
 * one in a single assignment, so a request sees one consistent config from
 * match to log.
 *
 * Reuse across generations: each compiled object remembers the store
 * revisions it was built from (its `revKey`). The next compile takes the
 * previous generation's object whenever that key is unchanged, so an
 * untouched route keeps its chain, an untouched upstream keeps its pools and
 * health state, and a reload of identical data swaps nothing at all
 * (checklist 13). This is exact where an LRU would be approximate: a live
 * object is never evicted and a dead one is released at the next compile.
 */
import type { Logger } from 'pino';
import type { PorticoConfig } from '../config/types.js';
import type { Vars } from '../plugin/ctx.js';
import type {
  ConsumerConf,
  PluginConfMap,
  RouteConf,
  ServiceConf,
  TimeoutConf,
  UpstreamConf,
} from '../model.js';
import { KEY_PREFIX } from '../model.js';
import { resolveSecretRefs } from '../secrets/refs.js';
import { buildChain, EMPTY_CHAIN, type ChainEntry, type PluginChain } from '../plugin/pipeline.js';
import type { PluginRegistry } from '../plugin/registry.js';
import { decryptConf } from '../secrets/encryption.js';
import type { SchemaType } from '../plugin/contract.js';
import { ERRORS, type GatewayError } from '../errors.js';
import type { ListResult, StoreItem, WatchEvent, WatchListener, Watcher } from '../store/types.js';
import type { UpstreamRuntime } from '../upstream/types.js';
import { createUpstreamRuntime } from '../upstream/index.js';
import { compileExpr } from '../match/expr.js';
import { compileIpMatcher } from '../match/ip-match.js';
import { ConfigError } from '../config/project-root.js';
import { getSchemeHandler, prepareSchemeHandler } from '../pubsub/scheme-handler.js';
import { compileRouter, routerOptionsFor, type Router } from '../match/router.js';

/** What the snapshot needs from the plugin registry; tests may pass their own. */
export type PluginLookup = Pick<PluginRegistry, 'get' | 'checkConf'>;

/** The part of ConfigStore the data plane reads; workers get it over IPC. */
export interface ConfigFeed {
  list(prefix: string): Promise<ListResult>;
  watch(prefix: string, fromRevision: number, listener: WatchListener): Watcher;
}

export interface CompiledUpstream {
  readonly revKey: string;
  readonly conf: UpstreamConf & { id?: string };
  /** Undefined for schemes handed to a SchemeHandler (kafka): nothing is proxied. */
  readonly runtime: UpstreamRuntime | undefined;
}

export interface CompiledRoute {
  readonly key: string;
  readonly revKey: string;
  /** The route after the plugin_config and service merge. */
  readonly conf: RouteConf & { id: string };
  readonly service: (ServiceConf & { id: string }) | undefined;
  readonly chain: PluginChain;
  /** Set when the route matched but cannot be served (missing service or plugin_config). */
  readonly failure: GatewayError | undefined;
  readonly upstreamId: string | undefined;
  readonly upstream: CompiledUpstream | undefined;
  readonly enableWebsocket: boolean;
  readonly timeout: TimeoutConf | undefined;
  /** Chains merged with a consumer's plugins, built on first use per consumer version. */
  readonly consumerChains: WeakMap<CompiledConsumer, PluginChain>;
}

export interface CompiledConsumer {
  readonly revKey: string;
  readonly conf: ConsumerConf;
  /** The consumer's plugins over its group's (consumer wins), merged into a route after auth. */
  readonly entries: readonly ChainEntry[];
  /** Names a consumer group that does not exist: APISIX answers its requests 503. */
  readonly groupMissing: boolean;
}

/** A consumer group's plugins, compiled once per revision. */
export interface CompiledConsumerGroup {
  readonly revKey: string;
  readonly entries: readonly ChainEntry[];
}

/** A consumer's credential as auth plugins see it: the consumer, with the credential's auth conf as `plugins`. */
export interface CompiledCredential {
  /** The credential's and its consumer's revisions: either changing recompiles it. */
  readonly revKey: string;
  readonly conf: ConsumerConf;
}

/** `<username>/credentials/<id>` under /apisix/consumers/. */
const CREDENTIAL_ID = /^([^/]+)\/credentials\/([^/]+)$/;

export interface Snapshot {
  /** Store revision this snapshot reflects. */
  readonly revision: number;
  /** Bumped only when something compiled differently (checklist 13). */
  readonly version: number;
  readonly router: Router<CompiledRoute>;
  readonly routes: ReadonlyMap<string, CompiledRoute>;
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  readonly consumers: ReadonlyMap<string, CompiledConsumer>;
  readonly consumerGroups: ReadonlyMap<string, CompiledConsumerGroup>;
  /** Keyed by `<username>/credentials/<id>`; only credentials whose consumer exists. */
  readonly credentials: ReadonlyMap<string, CompiledCredential>;
  readonly globalChain: PluginChain;
  readonly pluginMetadata: ReadonlyMap<string, Record<string, unknown>>;
  /** apisix.trusted_addresses, compiled once: may this peer's X-Forwarded-For chain be kept? */
  readonly trustedPeer: (ip: string) => boolean;
}

interface RawItem {
  readonly value: Record<string, unknown>;
  readonly modRevision: number;
}

type RawTables = Record<
  'routes' | 'services' | 'upstreams' | 'consumers' | 'consumer_groups' | 'global_rules' | 'plugin_configs' | 'plugin_metadata',
  Map<string, RawItem>
>;
const KEPT = new Set<keyof RawTables>(['routes', 'services', 'upstreams', 'consumers', 'consumer_groups', 'global_rules', 'plugin_configs', 'plugin_metadata']);
const PREFIX = KEY_PREFIX + '/';

class SkipObject extends Error {}

export interface SnapshotOptions {
  registry: PluginLookup;
  config: PorticoConfig;
  logger: Logger;
  /** Called after each swap (tests, metrics). */
  onSwap?: (snapshot: Snapshot) => void;
}

export class ConfigSnapshot {
  current: Snapshot;
  private readonly raw: RawTables = {
    routes: new Map(),
    services: new Map(),
    upstreams: new Map(),
    consumers: new Map(),
    consumer_groups: new Map(),
    global_rules: new Map(),
    plugin_configs: new Map(),
    plugin_metadata: new Map(),
  };
  private revision = 0;
  /** Store revision the last compile saw, whether or not anything changed. */
  appliedRevision = 0;
  private scheduled = false;
  private watcher: Watcher | undefined;
  private closed = false;
  /** Runtimes retired by a swap, closed after in-flight requests had time to finish with them. */
  private readonly retiring = new Set<UpstreamRuntime>();
  private readonly inlineUpstreams = new Map<string, CompiledUpstream>();
  private consumersFed = false;
  private readonly trustedPeer: (ip: string) => boolean;

  constructor(private readonly opts: SnapshotOptions) {
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
    };
  }

  /** Lists everything under /apisix/, compiles, then follows changes from the next revision. */
  async start(feed: ConfigFeed): Promise<void> {
    const listing = await feed.list(PREFIX);
    for (const item of listing.items) this.put(item.key, item.value, item.modRevision);
    this.revision = listing.revision;
    this.compile();
    if (this.closed) return;
    this.watcher = feed.watch(PREFIX, listing.revision + 1, (events, revision) => this.apply(events, revision));
  }

  /** Applies one batch of watch events; compilation runs once for all batches of this tick. */
  apply(events: readonly WatchEvent[], revision: number): void {
    for (const ev of events) {
      if (ev.type === 'put') this.put(ev.key, ev.value, ev.modRevision);
      else if (ev.type === 'delete') this.remove(ev.key);
      else this.reset(ev.items);
    }
    if (revision > this.revision) this.revision = revision;
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
    const all = new Set<UpstreamRuntime>(this.retiring);
    for (const u of this.current.upstreams.values()) if (u.runtime) all.add(u.runtime);
    for (const r of this.current.routes.values()) if (r.upstream?.runtime) all.add(r.upstream.runtime);
    this.retiring.clear();
    await Promise.all([...all].map((r) => r.close().catch(() => undefined)));
  }

  private table(key: string): { table: Map<string, RawItem>; id: string } | undefined {
    if (!key.startsWith(PREFIX)) return undefined;
    const slash = key.indexOf('/', PREFIX.length);
    if (slash < 0) return undefined;
    const name = key.slice(PREFIX.length, slash) as keyof RawTables;
    if (!KEPT.has(name)) return undefined;
    return { table: this.raw[name], id: key.slice(slash + 1) };
  }

  /** A full resync: objects missing from `items` are gone; unchanged ones keep their compiled state. */
  private reset(items: readonly StoreItem[]): void {
    for (const table of Object.values(this.raw) as Array<Map<string, RawItem>>) table.clear();
    for (const item of items) this.put(item.key, item.value, item.modRevision);
    this.opts.logger.warn({ objects: items.length }, 'config: store watch resynchronised from a full listing');
  }

  private put(key: string, value: unknown, modRevision: number): void {
    const t = this.table(key);
    if (!t) return;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.opts.logger.warn({ key }, 'config: ignoring a non-object value');
      t.table.delete(t.id);
      return;
    }
    t.table.set(t.id, { value: value as Record<string, unknown>, modRevision });
  }

  private remove(key: string): void {
    const t = this.table(key);
    if (t) t.table.delete(t.id);
  }

  // ---- compilation -------------------------------------------------------

  /** Rebuilds the snapshot, reusing every compiled object whose inputs did not change. */
  compile(): void {
    const prev = this.current;
    this.appliedRevision = this.revision;
    let changed = false;

    const upstreams = new Map<string, CompiledUpstream>();
    for (const [id, item] of this.raw.upstreams) {
      const revKey = String(item.modRevision);
      const old = prev.upstreams.get(id);
      if (old && old.revKey === revKey) {
        upstreams.set(id, old);
        continue;
      }
      changed = true;
      const compiled = this.tryCompile(`/apisix/upstreams/${id}`, () => this.compileUpstream({ ...(item.value as UpstreamConf), id }, `/apisix/upstreams/${id}`, revKey));
      if (compiled) upstreams.set(id, compiled);
    }
    if (upstreams.size !== prev.upstreams.size) changed = true;

    // Consumer groups first: a consumer's compiled plugins include its group's.
    const consumerGroups = new Map<string, CompiledConsumerGroup>();
    for (const [id, item] of this.raw.consumer_groups) {
      const revKey = String(item.modRevision);
      const old = prev.consumerGroups.get(id);
      if (old && old.revKey === revKey) {
        consumerGroups.set(id, old);
        continue;
      }
      const compiled = this.tryCompile(`/apisix/consumer_groups/${id}`, () => ({
        revKey,
        entries: this.compilePlugins(item.value.plugins as PluginConfMap | undefined, 'route', true),
      }));
      if (compiled) consumerGroups.set(id, compiled);
    }

    const consumers = new Map<string, CompiledConsumer>();
    const credentialItems: Array<[string, RawItem]> = [];
    let consumersChanged = false;
    for (const [id, item] of this.raw.consumers) {
      // A consumer's credentials live under its key; they are compiled once the consumers are.
      if (id.includes('/')) {
        credentialItems.push([id, item]);
        continue;
      }
      const groupId = item.value.group_id;
      const group = groupId === undefined || groupId === null ? undefined : consumerGroups.get(String(groupId));
      // A group's change recompiles its consumers: its revision is part of theirs.
      const revKey = groupId === undefined || groupId === null ? String(item.modRevision) : `${item.modRevision}/${group?.revKey ?? 'missing'}`;
      const old = prev.consumers.get(id);
      if (old && old.revKey === revKey) {
        consumers.set(id, old);
        continue;
      }
      consumersChanged = true;
      const compiled = this.tryCompile(`/apisix/consumers/${id}`, () =>
        this.compileConsumer(item.value as unknown as ConsumerConf, revKey, group, groupId !== undefined && groupId !== null && group === undefined),
      );
      if (compiled) consumers.set(compiled.conf.username, compiled);
    }
    if (consumers.size !== prev.consumers.size) consumersChanged = true;
    const credentials = new Map<string, CompiledCredential>();
    for (const [id, item] of credentialItems) {
      const m = CREDENTIAL_ID.exec(id);
      // A credential without its consumer identifies nobody (APISIX logs it as a wild credential).
      const owner = m === null ? undefined : consumers.get(m[1]!);
      if (owner === undefined) continue;
      const revKey = `${item.modRevision}/${owner.revKey}`;
      const old = prev.credentials.get(id);
      if (old && old.revKey === revKey) {
        credentials.set(id, old);
        continue;
      }
      consumersChanged = true;
      const compiled = this.tryCompile(`/apisix/consumers/${id}`, () => this.compileCredential(owner, m![2]!, item.value, revKey));
      if (compiled) credentials.set(id, compiled);
    }
    if (credentials.size !== prev.credentials.size) consumersChanged = true;
    if (consumersChanged || !this.consumersFed) this.feedConsumers(consumers, credentials);
    changed ||= consumersChanged;

    const globalRevKey = [...this.raw.global_rules].map(([id, i]) => `${id}@${i.modRevision}`).join(',');
    let globalChain = prev.globalChain;
    if (globalRevKey !== this.globalRevKey) {
      this.globalRevKey = globalRevKey;
      globalChain = this.compileGlobalRules();
      changed = true;
    }

    const routes = new Map<string, CompiledRoute>();
    let routesChanged = false;
    const liveInline = new Set<string>();
    for (const [id, item] of this.raw.routes) {
      const conf = item.value as RouteConf;
      if (conf.status === 0) continue;
      const service = conf.service_id !== undefined ? this.raw.services.get(String(conf.service_id)) : undefined;
      const pc = conf.plugin_config_id !== undefined ? this.raw.plugin_configs.get(String(conf.plugin_config_id)) : undefined;
      const revKey = `${item.modRevision}|${service?.modRevision ?? '-'}|${pc?.modRevision ?? '-'}`;
      const key = `/apisix/routes/${id}`;
      const old = prev.routes.get(id);
      if (old && old.revKey === revKey) {
        routes.set(id, old);
        if (old.upstream) liveInline.add(key);
        continue;
      }
      routesChanged = true;
      const compiled = this.tryCompile(key, () => this.compileRoute(id, key, revKey, conf, service, pc));
      if (compiled) {
        routes.set(id, compiled);
        if (compiled.upstream) liveInline.add(key);
      }
    }
    if (routes.size !== prev.routes.size) routesChanged = true;
    changed ||= routesChanged;

    const pluginMetadata = new Map<string, Record<string, unknown>>();
    for (const [id, item] of this.raw.plugin_metadata) pluginMetadata.set(id, item.value);
    if (!sameMetadata(prev.pluginMetadata, pluginMetadata)) changed = true;

    if (!changed) return;

    let router = prev.router;
    if (routesChanged) {
      router = compileRouter<CompiledRoute>(
        // The merged conf carries the service's hosts as the fallback already.
        // Sorted by id so ties resolve the same way after every restart and on every worker.
        [...routes.values()]
          .sort((a, b) => (a.conf.id < b.conf.id ? -1 : a.conf.id > b.conf.id ? 1 : 0))
          .map((r) => ({ id: r.conf.id, route: r.conf, data: r })),
        // apisix.router.http, validated at load: an unknown name never gets here.
        routerOptionsFor(this.opts.config.apisix.router?.http ?? 'radixtree_host_uri'),
      );
      for (const e of router.errors) this.opts.logger.warn({ route: e.id, error: e.error }, 'config: route left out of the router');
    }
    const next: Snapshot = {
      trustedPeer: this.trustedPeer,
      revision: this.revision,
      version: prev.version + 1,
      router,
      routes,
      upstreams,
      consumers,
      consumerGroups,
      credentials,
      globalChain,
      pluginMetadata: sameMetadata(prev.pluginMetadata, pluginMetadata) ? prev.pluginMetadata : pluginMetadata,
    };
    this.current = next;
    this.retire(prev, next, liveInline);
    this.opts.onSwap?.(next);
  }

  private globalRevKey = '';

  private tryCompile<T>(key: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.opts.logger.warn({ key, err: err instanceof SkipObject ? err.message : err }, 'config: skipping invalid object');
      return undefined;
    }
  }

  /**
   * Compiles a plugins map into chain entries; an invalid conf skips the whole object, as APISIX's sync does.
   * `validated` collects each conf as validated (before the plugin's compile), for auth plugins' consumer tables.
   */
  private compilePlugins(plugins: PluginConfMap | undefined, type: SchemaType, fromConsumer = false, validated?: PluginConfMap): ChainEntry[] {
    const out: ChainEntry[] = [];
    if (!plugins) return out;
    const { registry, logger } = this.opts;
    const keyring = this.opts.config.apisix.data_encryption?.keyring ?? [];
    for (const name of Object.keys(plugins)) {
      const raw = plugins[name];
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new SkipObject(`invalid plugin conf for plugin [${name}]`);
      const def = registry.get(name);
      if (!def) {
        logger.warn({ plugin: name }, 'config: unknown plugin skipped');
        continue;
      }
      const meta = raw._meta as { disable?: boolean; priority?: number; filter?: unknown[]; error_response?: unknown } | undefined;
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
      // The conf passed the plugin's schema, which is what its `Conf` type describes.
      const compiled = def.compile ? def.compile(conf as never) : conf;
      let filter: ((vars: Vars) => boolean) | undefined;
      if (Array.isArray(meta?.filter) && meta.filter.length > 0) {
        const expr = compileExpr(meta.filter);
        // APISIX: an expression that fails to evaluate lets the plugin run.
        filter = (vars) => {
          try {
            return expr(vars);
          } catch {
            return true;
          }
        };
      }
      out.push({
        name,
        def,
        conf: compiled,
        priority: typeof meta?.priority === 'number' ? meta.priority : def.priority,
        filter,
        errorResponse: meta?.error_response,
        fromConsumer,
      });
    }
    return out;
  }

  private compileUpstream(conf: UpstreamConf & { id?: string }, key: string, revKey: string): CompiledUpstream {
    const takenOver = getSchemeHandler(conf.scheme) !== undefined;
    if (takenOver) prepareSchemeHandler(conf.scheme);
    return { revKey, conf, runtime: takenOver ? undefined : createUpstreamRuntime(conf, key) };
  }

  private compileConsumer(conf: ConsumerConf, revKey: string, group: CompiledConsumerGroup | undefined, groupMissing: boolean): CompiledConsumer {
    if (typeof conf.username !== 'string') throw new SkipObject('consumer without username');
    // Auth plugins read the validated confs (defaults filled, decrypted), not the stored ones; never the group's.
    const plugins: PluginConfMap = {};
    const own = this.compilePlugins(conf.plugins, 'consumer', true, plugins);
    let entries: readonly ChainEntry[] = own;
    if (group !== undefined && group.entries.length > 0) {
      // APISIX's merge_consumer_route: the group's plugins, then the consumer's over them.
      const byName = new Map<string, ChainEntry>();
      for (const e of group.entries) byName.set(e.name, e);
      for (const e of own) byName.set(e.name, e);
      entries = [...byName.values()];
    }
    return { revKey, conf: { ...conf, plugins }, entries, groupMissing };
  }

  private compileCredential(owner: CompiledConsumer, id: string, value: Record<string, unknown>, revKey: string): CompiledCredential {
    const plugins: PluginConfMap = {};
    this.compilePlugins(value.plugins as PluginConfMap | undefined, 'consumer', true, plugins);
    // The consumer's own plugins still merge by username (consumers map); `plugins` here is what the auth plugin matches on.
    return { revKey, conf: { ...owner.conf, plugins, credential_id: id } };
  }

  private feedConsumers(consumers: ReadonlyMap<string, CompiledConsumer>, credentials: ReadonlyMap<string, CompiledCredential>): void {
    this.consumersFed = true;
    const list = [...consumers.values()].map((c) => c.conf);
    for (const c of credentials.values()) list.push(c.conf);
    const registry = this.opts.registry as PluginLookup & { list?: () => Array<{ name: string }> };
    const names = new Set<string>();
    for (const c of list) for (const n of Object.keys(c.plugins ?? {})) names.add(n);
    for (const def of registry.list?.() ?? []) names.add(def.name);
    for (const name of names) {
      const def = this.opts.registry.get(name);
      if (!def?.consumers) continue;
      try {
        // Every consumer: a plugin may name one that has no conf of its own (key-auth's anonymous_consumer).
        def.consumers(list);
      } catch (err) {
        this.opts.logger.error({ err, plugin: name }, 'config: plugin failed to load consumers');
      }
    }
  }

  /** All global rules as one chain; a plugin in more than one rule runs in none (APISIX). */
  private compileGlobalRules(): PluginChain {
    const seen = new Map<string, number>();
    for (const item of this.raw.global_rules.values()) {
      const plugins = (item.value.plugins ?? {}) as PluginConfMap;
      for (const name of Object.keys(plugins)) seen.set(name, (seen.get(name) ?? 0) + 1);
    }
    const entries: ChainEntry[] = [];
    for (const [id, item] of this.raw.global_rules) {
      const plugins = { ...((item.value.plugins ?? {}) as PluginConfMap) };
      for (const name of Object.keys(plugins)) {
        if (seen.get(name)! > 1) {
          this.opts.logger.error({ plugin: name }, 'config: plugin found in more than one global rule; not run');
          delete plugins[name];
        }
      }
      const compiled = this.tryCompile(`/apisix/global_rules/${id}`, () => this.compilePlugins(plugins, 'route'));
      if (compiled) entries.push(...compiled);
    }
    return buildChain(entries);
  }

  private compileRoute(
    id: string,
    key: string,
    revKey: string,
    route: RouteConf,
    service: RawItem | undefined,
    pc: RawItem | undefined,
  ): CompiledRoute {
    let failure: GatewayError | undefined;
    let plugins: PluginConfMap = { ...(route.plugins ?? {}) };
    if (route.plugin_config_id !== undefined) {
      if (!pc) failure = ERRORS.pluginConfigNotFound;
      else {
        const pcPlugins = (pc.value.plugins ?? {}) as PluginConfMap;
        for (const name of Object.keys(pcPlugins)) if (!(name in plugins)) plugins[name] = pcPlugins[name]!;
      }
    }
    let merged: RouteConf & { id: string } = { ...route, id };
    let serviceConf: (ServiceConf & { id: string }) | undefined;
    if (route.service_id !== undefined) {
      if (!service) failure ??= ERRORS.serviceNotFound;
      else {
        serviceConf = { ...(service.value as ServiceConf), id: String(route.service_id) };
        plugins = { ...(serviceConf.plugins ?? {}), ...plugins };
        merged = mergeServiceRoute(serviceConf, merged);
      }
    }
    merged.plugins = plugins;
    const chain = failure ? EMPTY_CHAIN : buildChain(this.compilePlugins(plugins, 'route'));

    let upstream: CompiledUpstream | undefined;
    const upstreamId = merged.upstream_id !== undefined ? String(merged.upstream_id) : undefined;
    if (merged.upstream && upstreamId === undefined) {
      // Keyed by content, not route revision: a plugin edit on the route keeps its pools and health state.
      const contentKey = JSON.stringify(merged.upstream);
      const old = this.inlineUpstreams.get(key);
      upstream = old && old.revKey === contentKey ? old : this.compileUpstream({ ...merged.upstream } as UpstreamConf & { id?: string }, key + '#upstream', contentKey);
      this.inlineUpstreams.set(key, upstream);
    }
    return {
      key,
      revKey,
      conf: merged,
      service: serviceConf,
      chain,
      failure,
      upstreamId,
      upstream,
      enableWebsocket: (route.enable_websocket ?? serviceConf?.enable_websocket) === true,
      timeout: merged.timeout,
      consumerChains: new WeakMap(),
    };
  }

  /** Closes runtimes the new snapshot no longer uses, after a grace period for requests still holding them. */
  private retire(prev: Snapshot, next: Snapshot, liveInline: ReadonlySet<string>): void {
    const live = new Set<UpstreamRuntime>();
    for (const u of next.upstreams.values()) if (u.runtime) live.add(u.runtime);
    for (const r of next.routes.values()) if (r.upstream?.runtime) live.add(r.upstream.runtime);
    for (const k of [...this.inlineUpstreams.keys()]) if (!liveInline.has(k)) this.inlineUpstreams.delete(k);
    const dead: UpstreamRuntime[] = [];
    for (const u of prev.upstreams.values()) if (u.runtime && !live.has(u.runtime)) dead.push(u.runtime);
    for (const r of prev.routes.values()) if (r.upstream?.runtime && !live.has(r.upstream.runtime)) dead.push(r.upstream.runtime);
    if (dead.length === 0) return;
    for (const r of dead) this.retiring.add(r);
    const timer = setTimeout(() => {
      for (const r of dead) {
        this.retiring.delete(r);
        r.close().catch((err: unknown) => this.opts.logger.warn({ err }, 'config: closing a retired upstream failed'));
      }
    }, RETIRE_GRACE_MS);
    timer.unref();
  }
}

/** Long enough for a request that matched just before a swap to pick its node. */
const RETIRE_GRACE_MS = 10_000;

/** APISIX's merge_service_route: the service is the base, the route's own fields win. */
function mergeServiceRoute(service: ServiceConf & { id: string }, route: RouteConf & { id: string }): RouteConf & { id: string } {
  const merged: RouteConf & { id: string } = { ...route };
  if (route.upstream === undefined && route.upstream_id === undefined) {
    if (service.upstream !== undefined) merged.upstream = service.upstream;
    else if (service.upstream_id !== undefined) merged.upstream_id = service.upstream_id;
  }
  // A service's hosts are the route's fallback for matching.
  if (route.hosts === undefined && route.host === undefined && service.hosts !== undefined) merged.hosts = service.hosts;
  return merged;
}

function sameMetadata(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** Merges a consumer's plugins over a route's chain (consumer wins); cached per route and consumer version. */
export function consumerChain(route: CompiledRoute, consumer: CompiledConsumer): PluginChain {
  let chain = route.consumerChains.get(consumer);
  if (chain) return chain;
  const byName = new Map<string, ChainEntry>();
  for (const e of route.chain.entries) byName.set(e.name, e);
  for (const e of consumer.entries) {
    const existing = byName.get(e.name);
    // Only plugins the route lacked are "from the consumer" for rewrite_in_consumer.
    byName.set(e.name, existing ? { ...e, fromConsumer: false } : e);
  }
  chain = buildChain([...byName.values()]);
  route.consumerChains.set(consumer, chain);
  return chain;
}
