/**
 * Routes compiled for matching and serving: APISIX's merges (plugin_config
 * under the route's own plugins, service as the base of the route), the
 * plugin chain, the route's inline upstream, and the per-consumer chains
 * built after authentication.
 */
import type { PluginConfMap, RouteConf, ServiceConf, UpstreamConf } from '../model.js';
import { ERRORS, type GatewayError } from '../errors.js';
import { buildChain, EMPTY_CHAIN, type ChainEntry, type PluginChain } from '../plugin/pipeline.js';
import type { PluginConfCompiler } from './plugins.js';
import type { CompiledConsumer, CompiledRoute, CompiledUpstream } from './types.js';
import { compileUpstream } from './upstreams.js';

/** A stored object the route names (its service or plugin_config), as the store mirror holds it. */
interface Referenced {
  readonly value: Record<string, unknown>;
}

export function compileRoute(
  plugins: PluginConfCompiler,
  /** Routes' inline upstreams by route key, kept across compiles so an untouched one keeps its pools. */
  inlineUpstreams: Map<string, CompiledUpstream>,
  id: string,
  key: string,
  revKey: string,
  route: RouteConf,
  service: Referenced | undefined,
  pc: Referenced | undefined,
): CompiledRoute {
  let failure: GatewayError | undefined;
  let confs: PluginConfMap = { ...(route.plugins ?? {}) };
  if (route.plugin_config_id !== undefined) {
    if (!pc) failure = ERRORS.pluginConfigNotFound;
    else {
      const pcPlugins = (pc.value.plugins ?? {}) as PluginConfMap;
      for (const name of Object.keys(pcPlugins)) if (!(name in confs)) confs[name] = pcPlugins[name]!;
    }
  }
  let merged: RouteConf & { id: string } = { ...route, id };
  let serviceConf: (ServiceConf & { id: string }) | undefined;
  if (route.service_id !== undefined) {
    if (!service) failure ??= ERRORS.serviceNotFound;
    else {
      serviceConf = { ...(service.value as ServiceConf), id: String(route.service_id) };
      confs = { ...(serviceConf.plugins ?? {}), ...confs };
      merged = mergeServiceRoute(serviceConf, merged);
    }
  }
  merged.plugins = confs;
  const chain = failure ? EMPTY_CHAIN : buildChain(plugins.entries(confs, 'route'));

  let upstream: CompiledUpstream | undefined;
  const upstreamId = merged.upstream_id !== undefined ? String(merged.upstream_id) : undefined;
  if (merged.upstream && upstreamId === undefined) {
    // Keyed by content, not route revision: a plugin edit on the route keeps its pools and health state.
    const contentKey = JSON.stringify(merged.upstream);
    const old = inlineUpstreams.get(key);
    upstream = old && old.revKey === contentKey ? old : compileUpstream({ ...merged.upstream } as UpstreamConf & { id?: string }, key + '#upstream', contentKey, plugins.keyring);
    inlineUpstreams.set(key, upstream);
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
