/**
 * Active and passive health checks with lua-resty-healthcheck's semantics, as
 * APISIX configures them: per node, counters for successes, HTTP failures,
 * TCP failures and timeouts; a success resets the failure counters and a
 * failure resets the success counter; reaching a threshold flips the node and
 * clears all counters; a threshold of 0 disables that counter. Statuses in
 * neither list are ignored. Nodes start healthy.
 *
 * Active probes run on two unref'd timers: `healthy.interval` probes healthy
 * nodes, `unhealthy.interval` probes unhealthy ones (0 turns that probe off).
 * Passive reports come from real traffic. An unhealthy node only comes back
 * through active probes: it gets no traffic, so passive successes never
 * arrive, exactly as in APISIX (whose schema therefore requires `active`).
 *
 * A new runtime for the same upstream key inherits the status of nodes it
 * still has, so an unrelated config edit neither resurrects a dead node nor
 * needs K probes to rediscover that it is dead.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { HealthCheckConf } from '../model.js';
import type { NodeState, UpstreamOutcome } from './types.js';

interface ActiveConf {
  type: 'http' | 'https' | 'tcp';
  timeoutMs: number;
  concurrency: number;
  host?: string;
  port?: number;
  method: string;
  path: string;
  body: string;
  verify: boolean;
  headers: Record<string, string>;
  healthyIntervalMs: number;
  healthyStatuses: ReadonlySet<number>;
  successes: number;
  unhealthyIntervalMs: number;
  unhealthyStatuses: ReadonlySet<number>;
  httpFailures: number;
  tcpFailures: number;
  timeouts: number;
}

interface PassiveConf {
  healthyStatuses: ReadonlySet<number>;
  successes: number;
  unhealthyStatuses: ReadonlySet<number>;
  httpFailures: number;
  tcpFailures: number;
  timeouts: number;
}

/** APISIX's health_checker schema defaults (apisix/schema_def.lua, `health_checker`). */
function activeDefaults(a: NonNullable<HealthCheckConf['active']>): ActiveConf {
  const headers: Record<string, string> = {};
  for (const line of a.req_headers ?? []) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return {
    type: a.type ?? 'http',
    timeoutMs: (a.timeout ?? 1) * 1000,
    concurrency: Math.max(1, a.concurrency ?? 10),
    host: a.host,
    port: a.port,
    method: a.http_method ?? 'GET',
    path: a.http_path ?? '/',
    body: a.http_req_body ?? '',
    verify: a.https_verify_certificate ?? true,
    headers,
    healthyIntervalMs: (a.healthy?.interval ?? 1) * 1000,
    healthyStatuses: new Set(a.healthy?.http_statuses ?? [200, 302]),
    successes: a.healthy?.successes ?? 2,
    unhealthyIntervalMs: (a.unhealthy?.interval ?? 1) * 1000,
    unhealthyStatuses: new Set(a.unhealthy?.http_statuses ?? [429, 404, 500, 501, 502, 503, 504, 505]),
    httpFailures: a.unhealthy?.http_failures ?? 5,
    tcpFailures: a.unhealthy?.tcp_failures ?? 2,
    timeouts: a.unhealthy?.timeouts ?? 3,
  };
}

const PASSIVE_HEALTHY = [200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308];

function passiveDefaults(p: NonNullable<HealthCheckConf['passive']>): PassiveConf {
  return {
    healthyStatuses: new Set(p.healthy?.http_statuses ?? PASSIVE_HEALTHY),
    successes: p.healthy?.successes ?? 5,
    unhealthyStatuses: new Set(p.unhealthy?.http_statuses ?? [429, 500, 503]),
    httpFailures: p.unhealthy?.http_failures ?? 5,
    tcpFailures: p.unhealthy?.tcp_failures ?? 2,
    timeouts: p.unhealthy?.timeouts ?? 7,
  };
}

type Verdict = 'success' | 'http' | 'tcp' | 'timeout' | 'ignore';

interface Thresholds {
  successes: number;
  httpFailures: number;
  tcpFailures: number;
  timeouts: number;
}

class Counters {
  successes = 0;
  http = 0;
  tcp = 0;
  timeouts = 0;
  probing = false;
  reset(): void {
    this.successes = this.http = this.tcp = this.timeouts = 0;
  }
}

export type HealthListener = (node: NodeState, healthy: boolean) => void;

/** One node as APISIX's control API reports it (lua-resty-healthcheck's `get_target_list`). */
export interface NodeHealth {
  ip: string;
  port: number;
  /** The node's host name when it is not an address. */
  hostname?: string;
  /** `mostly_*` only where several processes' checkers disagree (see src/core/control/health.ts). */
  status: 'healthy' | 'unhealthy' | 'mostly_healthy' | 'mostly_unhealthy';
  counter: { success: number; http_failure: number; tcp_failure: number; timeout_failure: number };
}

/** One checker: `name` is the key of the object that holds the upstream (`/apisix/upstreams/1`, `/apisix/routes/7`). */
export interface CheckerReport {
  name: string;
  type: 'http' | 'https' | 'tcp';
  nodes: NodeHealth[];
}

/** Status of each node key by upstream key, owned by the newest checker for that key. */
const inherited = new Map<string, { owner: HealthChecker; status: Map<string, boolean> }>();

export class HealthChecker {
  private readonly active?: ActiveConf;
  private readonly passiveConf?: PassiveConf;
  private readonly counters = new Map<NodeState, Counters>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly probes = new Set<{ destroy(): void }>();
  private readonly status: Map<string, boolean>;
  private readonly type: CheckerReport['type'];
  private closed = false;

  constructor(
    private readonly nodes: readonly NodeState[],
    checks: HealthCheckConf,
    private readonly upstreamKey: string,
    private readonly onChange?: HealthListener,
  ) {
    if (checks.active) this.active = activeDefaults(checks.active);
    if (checks.passive) this.passiveConf = passiveDefaults(checks.passive);
    // APISIX's control API names the active check's type, else the passive one's.
    this.type = checks.active?.type ?? checks.passive?.type ?? 'http';

    const previous = inherited.get(upstreamKey)?.status;
    this.status = new Map();
    for (const node of nodes) {
      this.counters.set(node, new Counters());
      const was = previous?.get(node.key);
      if (was !== undefined) node.healthy = was;
      this.status.set(node.key, node.healthy);
    }
    inherited.set(upstreamKey, { owner: this, status: this.status });
  }

  start(): void {
    const a = this.active;
    if (!a || this.closed) return;
    if (a.healthyIntervalMs > 0) this.every(a.healthyIntervalMs, true);
    if (a.unhealthyIntervalMs > 0) this.every(a.unhealthyIntervalMs, false);
  }

  private every(ms: number, healthy: boolean): void {
    const timer = setInterval(() => void this.round(healthy), ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** Probes every node currently in the given state, `concurrency` at a time. */
  private async round(healthy: boolean): Promise<void> {
    const a = this.active!;
    const queue = this.nodes.filter((n) => n.weight > 0 && n.healthy === healthy && !this.counters.get(n)!.probing);
    const worker = async (): Promise<void> => {
      for (let node = queue.shift(); node && !this.closed; node = queue.shift()) {
        const c = this.counters.get(node)!;
        c.probing = true;
        try {
          const verdict = await this.probe(node, a);
          if (!this.closed) this.apply(node, verdict, a);
        } finally {
          c.probing = false;
        }
      }
    };
    const workers: Promise<void>[] = [];
    for (let i = 0; i < Math.min(a.concurrency, queue.length); i++) workers.push(worker());
    await Promise.all(workers);
  }

  private probe(node: NodeState, a: ActiveConf): Promise<Verdict> {
    const port = a.port ?? node.port;
    return new Promise<Verdict>((resolve) => {
      let done = false;
      let handle: { destroy(): void };
      const finish = (v: Verdict): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.probes.delete(handle);
        handle.destroy();
        resolve(v);
      };
      const timer = setTimeout(() => finish('timeout'), a.timeoutMs);
      timer.unref();

      if (a.type === 'tcp') {
        const socket = net.connect({ host: node.connectHost, port });
        handle = socket;
        socket.once('connect', () => finish('success'));
        socket.once('error', () => finish('tcp'));
      } else {
        const hostHeader = a.host ?? node.host;
        const options: https.RequestOptions = {
          host: node.connectHost,
          port,
          method: a.method,
          path: a.path,
          agent: false,
          headers: { host: hostHeader, 'user-agent': 'portico-healthcheck', connection: 'close', ...a.headers },
        };
        if (a.type === 'https') {
          options.rejectUnauthorized = a.verify;
          if (net.isIP(hostHeader) === 0) options.servername = hostHeader;
        }
        const req = (a.type === 'https' ? https : http).request(options, (res) => {
          const status = res.statusCode ?? 0;
          res.resume();
          finish(a.healthyStatuses.has(status) ? 'success' : a.unhealthyStatuses.has(status) ? 'http' : 'ignore');
        });
        handle = req;
        req.once('error', () => finish('tcp'));
        req.end(a.body || undefined);
      }
      this.probes.add(handle);
    });
  }

  /** Passive check from real traffic; a no-op unless `checks.passive` is configured. */
  passive(node: NodeState, outcome: UpstreamOutcome): void {
    const p = this.passiveConf;
    if (!p || this.closed || !this.counters.has(node)) return;
    let verdict: Verdict;
    if (outcome.failure === 'timeout') verdict = 'timeout';
    else if (outcome.failure) verdict = 'tcp';
    else if (outcome.status === undefined) return;
    else if (p.unhealthyStatuses.has(outcome.status)) verdict = 'http';
    else if (p.healthyStatuses.has(outcome.status)) verdict = 'success';
    else return;
    this.apply(node, verdict, p);
  }

  private apply(node: NodeState, verdict: Verdict, t: Thresholds): void {
    const c = this.counters.get(node)!;
    switch (verdict) {
      case 'success':
        c.http = c.tcp = c.timeouts = 0;
        if (!node.healthy && t.successes > 0 && ++c.successes >= t.successes) this.flip(node, true, c);
        return;
      case 'http':
        c.successes = 0;
        if (node.healthy && t.httpFailures > 0 && ++c.http >= t.httpFailures) this.flip(node, false, c);
        return;
      case 'tcp':
        c.successes = 0;
        if (node.healthy && t.tcpFailures > 0 && ++c.tcp >= t.tcpFailures) this.flip(node, false, c);
        return;
      case 'timeout':
        c.successes = 0;
        if (node.healthy && t.timeouts > 0 && ++c.timeouts >= t.timeouts) this.flip(node, false, c);
        return;
      default:
        return;
    }
  }

  private flip(node: NodeState, healthy: boolean, c: Counters): void {
    node.healthy = healthy;
    c.reset();
    if (inherited.get(this.upstreamKey)?.owner === this) this.status.set(node.key, healthy);
    this.onChange?.(node, healthy);
  }

  /** What this checker knows now: each node's status and its counters toward the next flip. */
  report(): CheckerReport {
    const nodes: NodeHealth[] = [];
    for (const node of this.nodes) {
      const c = this.counters.get(node)!;
      const entry: NodeHealth = {
        ip: node.connectHost,
        port: node.port,
        status: node.healthy ? 'healthy' : 'unhealthy',
        counter: { success: c.successes, http_failure: c.http, tcp_failure: c.tcp, timeout_failure: c.timeouts },
      };
      if (net.isIP(node.connectHost) === 0) entry.hostname = node.connectHost;
      nodes.push(entry);
    }
    // An inline upstream's key names its holder with a suffix (`/apisix/routes/7#upstream`); APISIX names the holder.
    const hash = this.upstreamKey.indexOf('#');
    return { name: hash < 0 ? this.upstreamKey : this.upstreamKey.slice(0, hash), type: this.type, nodes };
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    for (const p of this.probes) p.destroy();
    this.probes.clear();
    if (inherited.get(this.upstreamKey)?.owner === this) inherited.delete(this.upstreamKey);
  }
}

/** Every live checker of this process (the newest one per upstream key), for the control API. */
export function healthReports(): CheckerReport[] {
  const out: CheckerReport[] = [];
  for (const { owner } of inherited.values()) out.push(owner.report());
  return out;
}
