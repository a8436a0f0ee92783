/**
 * One upstream configuration, compiled: nodes grouped by priority (highest
 * first, each with its own balancer), a pool per node and an optional health
 * checker. A node's pool is created when a request first goes to it (an
 * undici Pool costs 11-15 KB, in every worker, so an upstream of 50,000 nodes
 * nobody routes to cost 540-760 MB when they were made up front); a pool still
 * live from the version this one replaces is adopted at once, so a config
 * change keeps warm connections. close() releases the pools it took, and the
 * last release closes a pool: a node that left the config lets its pool go. pick() walks the groups and falls to a lower one only when the
 * higher one has no usable node, as APISIX's priority balancer does.
 *
 * When every node is unhealthy pick() returns undefined and the caller answers
 * 502 at once. APISIX instead ignores health and tries all nodes; with a dead
 * upstream that turns each request into a wait for connect timeouts, which is
 * the opposite of what a health check is for.
 */
import type { Pool } from 'undici';
import type { RequestContext } from '../plugin/ctx.js';
import type { UpstreamConf } from '../model.js';
import { balancerFactory } from './balancer/index.js';
import { HealthChecker, type HealthListener } from './health.js';
import { parseNodes, type ParsedNode } from './nodes.js';
import { acquireLivePool, acquirePool, poolSettings, releasePool, type PoolSettings } from './pool.js';
import type { Balancer, NodeState, UpstreamOutcome, UpstreamRuntime, UpstreamTarget } from './types.js';

/** The grace a late-made pool of a retired runtime gets before its reference is dropped (as pool.ts's drain). */
const LATE_RELEASE_MS = 30_000;

interface Group {
  priority: number;
  balancer: Balancer;
}

export interface RuntimeOptions {
  /** Called when a node's health flips (logging, metrics). */
  onHealthChange?: HealthListener;
}

class Runtime implements UpstreamRuntime {
  readonly nodes: readonly NodeState[];
  private readonly groups: readonly Group[];
  private readonly groupOf: Map<NodeState, Balancer>;
  private readonly health?: HealthChecker;
  private readonly settings: PoolSettings;
  readonly observed: boolean;
  readonly retries: number;
  readonly connectTimeoutMs: number;
  /** Pools for route-level connect timeouts, keyed `node key|ms`; created on first use. */
  private overridePools: Map<string, Pool> | undefined;
  /** Pools this runtime holds a reference on (created or adopted), released by close(). */
  private readonly taken: Pool[] = [];
  private closed?: Promise<void>;

  constructor(
    readonly conf: UpstreamConf,
    readonly key: string,
    options: RuntimeOptions,
  ) {
    const settings = poolSettings(conf);
    this.settings = settings;
    this.connectTimeoutMs = settings.connectTimeoutMs;
    this.nodes = parseNodes(conf).map((n) => this.nodeState(n));

    const factory = balancerFactory(conf);
    const byPriority = new Map<number, NodeState[]>();
    for (const node of this.nodes) {
      if (node.weight <= 0) continue;
      const list = byPriority.get(node.priority);
      if (list) list.push(node);
      else byPriority.set(node.priority, [node]);
    }
    this.groupOf = new Map();
    this.groups = [...byPriority.keys()]
      .sort((a, b) => b - a)
      .map((priority) => {
        const nodes = byPriority.get(priority)!;
        const balancer = factory(nodes, conf);
        for (const n of nodes) this.groupOf.set(n, balancer);
        return { priority, balancer };
      });

    this.observed = Boolean(conf.checks?.passive) || this.groups.some((g) => g.balancer.observe !== undefined);
    const nodeCount = Array.isArray(conf.nodes) ? conf.nodes.length : conf.nodes ? Object.keys(conf.nodes).length : 1;
    this.retries = conf.retries ?? Math.max(0, nodeCount - 1);

    if (conf.checks && (conf.checks.active || conf.checks.passive)) {
      this.health = new HealthChecker(this.nodes, conf.checks, key, options.onHealthChange);
      this.health.start();
    }
  }

  private nodeState(n: ParsedNode): NodeState {
    const settings = this.settings;
    const taken = this.taken;
    let pool = acquireLivePool(n.host, n.port, settings);
    if (pool !== undefined) taken.push(pool);
    const runtime = this;
    return {
      ...n,
      healthy: true,
      active: 0,
      get pool(): Pool {
        if (pool === undefined) {
          pool = acquirePool(n.host, n.port, settings);
          // A request that picked this node just before its runtime retired: release once it had time to finish.
          if (runtime.closed) setTimeout(() => void releasePool(pool!), LATE_RELEASE_MS).unref();
          else taken.push(pool);
        }
        return pool;
      },
    };
  }

  pick(ctx: RequestContext, exclude?: ReadonlySet<string>): UpstreamTarget | undefined {
    const groups = this.groups;
    for (let i = 0; i < groups.length; i++) {
      const node = groups[i]!.balancer.pick(ctx, exclude);
      if (node) {
        node.active++;
        return node;
      }
    }
    return undefined;
  }

  report(target: UpstreamTarget, outcome: UpstreamOutcome): void {
    const node = target as NodeState;
    if (outcome.latencyMs !== undefined && outcome.failure === undefined) {
      this.groupOf.get(node)?.observe?.(node, outcome.latencyMs);
    }
    this.health?.passive(node, outcome);
  }

  release(target: UpstreamTarget): void {
    const node = target as NodeState;
    if (node.active > 0) node.active--;
  }

  poolWithConnectTimeout(target: UpstreamTarget, connectTimeoutMs: number): Pool {
    const node = target as NodeState;
    // A closed runtime must not take new pool references it would never release.
    if (connectTimeoutMs === this.connectTimeoutMs || this.closed) return node.pool;
    const key = `${node.key}|${connectTimeoutMs}`;
    const pools = (this.overridePools ??= new Map());
    let pool = pools.get(key);
    if (pool === undefined) {
      pool = acquirePool(node.host, node.port, { ...this.settings, connectTimeoutMs });
      pools.set(key, pool);
    }
    return pool;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.health?.close();
      const pools = [...this.taken];
      if (this.overridePools) pools.push(...this.overridePools.values());
      this.closed = Promise.all(pools.map((p) => releasePool(p))).then(() => undefined);
    }
    return this.closed;
  }
}

export function createRuntime(conf: UpstreamConf, key: string, options: RuntimeOptions = {}): UpstreamRuntime & { readonly nodes: readonly NodeState[] } {
  return new Runtime(conf, key, options);
}
