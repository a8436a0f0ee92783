/**
 * Open pub/sub sessions follow their route across config changes. APISIX
 * builds its Kafka client per request from the route's upstream nodes and
 * kafka-proxy's conf (apisix/pubsub/kafka.lua), so a long-lived WebSocket keeps
 * the brokers it started with, even after the route moved to others. Here,
 * after each snapshot swap, every open session whose route now resolves
 * differently either switches its backend to the new upstream (same scheme,
 * same plugins, same consumer: nothing the session was admitted on changed)
 * or is closed with 1012 and a reason naming the route, so the client
 * reconnects and goes through the route's plugins again (docs/pubsub.md).
 *
 * The check is identity first: compiled objects that did not change are
 * carried over from one snapshot to the next (snapshot/reuse.ts), so a
 * session whose route, upstream, global rules and consumer are the same
 * objects costs four comparisons per swap. Only a recompiled route has its
 * plugin confs compared, once per compiled route, whatever the number of
 * sessions on it. Nothing here runs per message.
 */
import type { GatewayError } from '../errors.js';
import type { UpstreamConf } from '../model.js';
import type { PluginChain } from '../plugin/pipeline.js';
import type { CompiledConsumer, CompiledRoute, CompiledUpstream, Snapshot } from '../snapshot/types.js';

/** RFC 6455's "Service Restart": the server asks the client to reconnect. */
export const ROUTE_CHANGED_CLOSE_CODE = 1012;

/** What a session offers its follower. */
export interface FollowingSession {
  /**
   * The route now resolves to `upstream` (same scheme): use it from the next
   * command on. Returns false when the backend cannot switch; the session is
   * then closed instead.
   */
  switchUpstream(upstream: UpstreamConf): boolean;
  close(code: number, reason: string): void;
}

/** What the session was admitted on, taken from the request when its WebSocket was accepted. */
export interface FollowedRequest {
  readonly route: CompiledRoute;
  readonly upstream: CompiledUpstream;
  /** The upstream id a plugin chose instead of the route's (traffic-split), if any. */
  readonly chosenUpstreamId: string | undefined;
  /** A plugin built the upstream itself: it lives and dies with the route's plugins. */
  readonly pluginBuiltUpstream: boolean;
  readonly globalChain: PluginChain;
  /** The authenticated consumer's name and its compiled object then. */
  readonly consumerName: string | undefined;
  readonly consumer: CompiledConsumer | undefined;
}

interface Follower {
  route: CompiledRoute;
  upstream: CompiledUpstream;
  globalChain: PluginChain;
  consumer: CompiledConsumer | undefined;
  readonly chosenUpstreamId: string | undefined;
  readonly pluginBuiltUpstream: boolean;
  readonly consumerName: string | undefined;
  readonly session: FollowingSession;
}

export interface FollowLogger {
  info(obj: object, msg: string): void;
}

/** Plugin confs of a compiled route as one string, computed once per compiled route. */
const pluginsKeys = new WeakMap<CompiledRoute, string>();
function pluginsKey(route: CompiledRoute): string {
  let k = pluginsKeys.get(route);
  if (k === undefined) {
    k = JSON.stringify(route.conf.plugins ?? {});
    pluginsKeys.set(route, k);
  }
  return k;
}

/** The error_msg a request to the route would now get (a missing service or plugin_config). */
function failureMessage(e: GatewayError): string {
  try {
    return String((JSON.parse(e.body.toString()) as { error_msg?: unknown }).error_msg ?? e.code);
  } catch {
    return e.code;
  }
}

/** A close frame's reason holds at most 123 bytes (RFC 6455 5.5: 125 less the code). */
export function fitCloseReason(reason: string): string {
  const b = Buffer.from(reason);
  return b.length <= 123 ? reason : b.subarray(0, 120).toString().replace(/\uFFFD$/, '') + '...';
}

/** The open sessions of one data plane. */
export class SessionFollowers {
  private readonly live = new Set<Follower>();

  constructor(private readonly logger?: FollowLogger) {}

  /** Starts following; the returned function stops (call it when the session ends). */
  add(request: FollowedRequest, session: FollowingSession): () => void {
    const f: Follower = { ...request, session };
    this.live.add(f);
    return () => void this.live.delete(f);
  }

  get size(): number {
    return this.live.size;
  }

  /** Called after every snapshot swap. */
  onSwap(snapshot: Snapshot): void {
    if (this.live.size === 0) return;
    for (const f of [...this.live]) {
      const verdict = this.follow(f, snapshot);
      if (verdict === undefined) continue;
      const id = f.route.conf.id;
      this.live.delete(f);
      this.logger?.info({ route: id, reason: verdict }, 'pubsub session closed after a config change');
      f.session.close(ROUTE_CHANGED_CLOSE_CODE, fitCloseReason(verdict));
    }
  }

  /** Brings `f` up to `s`: undefined when it may go on (switched or untouched), else why it must close. */
  private follow(f: Follower, s: Snapshot): string | undefined {
    const id = f.route.conf.id;
    const route = s.routes.get(id);
    if (route === undefined) return `route ${id} deleted`;
    const consumer = f.consumerName === undefined ? undefined : s.consumers.get(f.consumerName);
    const upstreamId = f.chosenUpstreamId ?? route.upstreamId;
    const upstream = upstreamId !== undefined ? s.upstreams.get(upstreamId) : route.upstream;
    if (route === f.route && s.globalChain === f.globalChain && consumer === f.consumer && (f.pluginBuiltUpstream || upstream === f.upstream)) {
      return undefined;
    }
    if (route.failure !== undefined) return `route ${id} changed: ${failureMessage(route.failure)}`;
    // The plugins admitted the session (auth, pubsub-acl, kafka-proxy's credentials): a change means they must run again.
    if (route !== f.route && pluginsKey(route) !== pluginsKey(f.route)) return `route ${id} changed: plugins changed`;
    if (s.globalChain !== f.globalChain) return `route ${id} changed: global rules changed`;
    if (consumer !== f.consumer) return `route ${id} changed: consumer ${f.consumerName} changed`;
    f.route = route;
    f.globalChain = s.globalChain;
    if (f.pluginBuiltUpstream) return undefined;
    if (upstream === undefined) return upstreamId !== undefined ? `route ${id} changed: upstream ${upstreamId} not found` : `route ${id} changed: no upstream`;
    if (upstream === f.upstream) return undefined;
    const scheme = upstream.conf.scheme ?? 'http';
    if (scheme !== f.upstream.conf.scheme) return `route ${id} changed: upstream scheme is now ${scheme}`;
    if (!f.session.switchUpstream(upstream.conf)) return `route ${id} changed: upstream moved`;
    f.upstream = upstream;
    this.logger?.info({ route: id, upstream: upstreamId ?? 'inline' }, 'pubsub session follows its route to a changed upstream');
    return undefined;
  }
}
