/**
 * The upstream runtime's contract with the data plane, and the internal shape
 * balancers work on. One runtime per upstream configuration version; it is
 * built when config changes and never per request.
 */
import type { Pool } from 'undici';
import type { RequestContext } from '../plugin/ctx.js';
import type { UpstreamConf } from '../model.js';

/** One node the data plane can send a request to. */
export interface UpstreamTarget {
  /** `host:port`, IPv6 hosts in brackets (`[::1]:8080`), as APISIX's `upstream_addr`. */
  readonly key: string;
  /** Host as configured; IPv6 addresses keep their brackets, as in APISIX's `balancer_ip`. */
  readonly host: string;
  readonly port: number;
  /** Keep-alive pool to this node, shared across config versions while its settings hold. */
  readonly pool: Pool;
}

export interface UpstreamOutcome {
  /** Upstream response status, when one was received. */
  status?: number;
  /** Why no response was received. */
  failure?: 'connect' | 'timeout' | 'reset';
  /** Time from sending the request to the response headers (connect included). */
  latencyMs?: number;
}

export interface UpstreamRuntime {
  readonly conf: UpstreamConf;
  /**
   * Chooses the node for one attempt; `exclude` holds the keys already tried
   * (retries). Undefined when no node is usable: all excluded, weight 0,
   * unhealthy, or none configured. Every pick must be paired with release().
   */
  pick(ctx: RequestContext, exclude?: ReadonlySet<string>): UpstreamTarget | undefined;
  /** False when report() would do nothing (no passive checks, no latency-aware balancer): callers skip timing then. */
  readonly observed: boolean;
  /** Retries per request: `retries`, else one fewer than the number of nodes. */
  readonly retries: number;
  /** Feeds passive health checks and the ewma balancer. */
  report(target: UpstreamTarget, outcome: UpstreamOutcome): void;
  /** The attempt that picked `target` is over (least_conn / ewma bookkeeping). */
  release(target: UpstreamTarget): void;
  /** The pool's connect timeout (upstream `timeout.connect`), in ms. */
  readonly connectTimeoutMs: number;
  /**
   * The pool to `target` whose connect timeout is `connectTimeoutMs` (a
   * route-level `timeout.connect` that differs from the upstream's). Shared
   * by every route with the same override; released with the runtime.
   */
  poolWithConnectTimeout(target: UpstreamTarget, connectTimeoutMs: number): Pool;
  /** Stops health checks and drops this runtime's hold on its pools. */
  close(): Promise<void>;
}

/** Per-node state the runtime and the balancers share; it is also the target handed out. */
export interface NodeState extends UpstreamTarget {
  readonly weight: number;
  readonly priority: number;
  /** Unbracketed host for socket connects. */
  readonly connectHost: string;
  healthy: boolean;
  /** Attempts picked and not yet released. */
  active: number;
}

/** A balancer over one priority group; nodes never contains weight-0 nodes. */
export interface Balancer {
  pick(ctx: RequestContext, exclude: ReadonlySet<string> | undefined): NodeState | undefined;
  /** Optional latency feedback (ewma). */
  observe?(node: NodeState, latencyMs: number): void;
}

export type BalancerFactory = (nodes: readonly NodeState[], conf: UpstreamConf) => Balancer;

/** True when the node may take this attempt. Kept tiny so balancers inline it. */
export function usable(node: NodeState, exclude: ReadonlySet<string> | undefined): boolean {
  return node.healthy && (exclude === undefined || !exclude.has(node.key));
}
