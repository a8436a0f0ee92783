/**
 * Health as the control API reports it. Every data-plane process runs its
 * own checkers (APISIX's workers share one through a shared dict), so the
 * primary asks each process for its reports and folds them into one per
 * upstream: a node on which the processes disagree is `mostly_healthy` or
 * `mostly_unhealthy` (lua-resty-healthcheck's words for a node between the
 * two), and its counters are summed over the processes.
 */
import { service } from '../process/channel.js';
import type { CheckerReport, NodeHealth } from '../upstream/index.js';

/** Asked of every worker by the primary; answered from its live checkers. */
export const HEALTH_REPORTS = service<null, CheckerReport[]>('control:healthcheck', 2_000);

export function mergeReports(perProcess: readonly (readonly CheckerReport[])[]): CheckerReport[] {
  const byName = new Map<string, { type: CheckerReport['type']; nodes: Map<string, { node: NodeHealth; healthy: number; seen: number }> }>();
  for (const reports of perProcess) {
    for (const r of reports) {
      let entry = byName.get(r.name);
      if (entry === undefined) byName.set(r.name, (entry = { type: r.type, nodes: new Map() }));
      for (const n of r.nodes) {
        const id = `${n.ip}:${n.port}`;
        const seen = entry.nodes.get(id);
        const healthy = n.status === 'healthy' ? 1 : 0;
        if (seen === undefined) {
          entry.nodes.set(id, { node: { ...n, counter: { ...n.counter } }, healthy, seen: 1 });
          continue;
        }
        seen.healthy += healthy;
        seen.seen += 1;
        const c = seen.node.counter;
        c.success += n.counter.success;
        c.http_failure += n.counter.http_failure;
        c.tcp_failure += n.counter.tcp_failure;
        c.timeout_failure += n.counter.timeout_failure;
      }
    }
  }
  const out: CheckerReport[] = [];
  for (const [name, { type, nodes }] of byName) {
    out.push({
      name,
      type,
      nodes: [...nodes.values()].map(({ node, healthy, seen }) => ({ ...node, status: statusOf(healthy, seen) })),
    });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function statusOf(healthy: number, seen: number): NodeHealth['status'] {
  if (healthy === seen) return 'healthy';
  if (healthy === 0) return 'unhealthy';
  return healthy * 2 >= seen ? 'mostly_healthy' : 'mostly_unhealthy';
}
