/**
 * What a compiled config is made of: the Snapshot every request reads and the
 * compiled objects in it. Each compiled object remembers the store revisions
 * it was built from (`revKey`), so the next compile can take it over as it is.
 */
import type { SniTable } from '../tls/sni-table.js';
import type { ConsumerConf, RouteConf, ServiceConf, TimeoutConf, UpstreamConf } from '../model.js';
import type { ChainEntry, PluginChain } from '../plugin/pipeline.js';
import type { PluginRegistry } from '../plugin/registry.js';
import type { GatewayError } from '../errors.js';
import type { ListResult, WatchListener, Watcher } from '../store/types.js';
import type { UpstreamRuntime } from '../upstream/types.js';
import type { Router } from '../match/router.js';

/** What the snapshot needs from the plugin registry; tests may pass their own. */
export type PluginLookup = Pick<PluginRegistry, 'get' | 'checkConf'> & {
  /** Bumped when the plugin set is reloaded: everything compiled from plugin confs is rebuilt. */
  readonly generation?: number;
};

/** The part of ConfigStore the data plane reads; workers get it over IPC. */
export interface ConfigFeed {
  list(prefix: string): Promise<ListResult>;
  watch(prefix: string, fromRevision: number, listener: WatchListener): Watcher;
}

/** Anything compiled from store items: the revisions it was built from. */
export interface Revisioned {
  readonly revKey: string;
}

export interface CompiledUpstream extends Revisioned {
  readonly conf: UpstreamConf & { id?: string };
  /** Undefined for schemes handed to a SchemeHandler (kafka): nothing is proxied. */
  readonly runtime: UpstreamRuntime | undefined;
}

export interface CompiledRoute extends Revisioned {
  readonly key: string;
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

export interface CompiledConsumer extends Revisioned {
  readonly conf: ConsumerConf;
  /** The consumer's plugins over its group's (consumer wins), merged into a route after auth. */
  readonly entries: readonly ChainEntry[];
  /** Names a consumer group that does not exist: APISIX answers its requests 503. */
  readonly groupMissing: boolean;
}

/** A consumer group's plugins, compiled once per revision. */
export interface CompiledConsumerGroup extends Revisioned {
  readonly entries: readonly ChainEntry[];
}

/** A consumer's credential as auth plugins see it: the consumer, with the credential's auth conf as `plugins`. */
export interface CompiledCredential extends Revisioned {
  /** (revKey: the credential's and its consumer's revisions: either changing recompiles it.) */
  readonly conf: ConsumerConf;
}

export interface Snapshot {
  /** Store revision this snapshot reflects. */
  readonly revision: number;
  /** Bumped only when something compiled differently (an identical reload swaps nothing). */
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
  /** The `ssls` objects' certificates by SNI, for the HTTPS listeners' handshakes. */
  readonly tls: SniTable;
}
