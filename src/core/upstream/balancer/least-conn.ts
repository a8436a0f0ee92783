/**
 * APISIX's least_conn: the score is (active attempts + 1) / weight and the
 * lowest score wins, so a node with twice the weight carries twice the
 * in-flight requests. Ties rotate, so an idle upstream still spreads load
 * instead of sending every request to the first node.
 */
import type { RequestContext } from '../../plugin/ctx.js';
import { usable, type Balancer, type NodeState } from '../types.js';

export function createLeastConn(nodes: readonly NodeState[]): Balancer {
  let start = 0;
  return {
    pick(_ctx: RequestContext, exclude: ReadonlySet<string> | undefined): NodeState | undefined {
      const n = nodes.length;
      let best: NodeState | undefined;
      let bestScore = Infinity;
      for (let k = 0; k < n; k++) {
        const node = nodes[(start + k) % n]!;
        if (!usable(node, exclude)) continue;
        const score = (node.active + 1) / node.weight;
        if (score < bestScore) {
          bestScore = score;
          best = node;
        }
      }
      start = start + 1 === n ? 0 : start + 1;
      return best;
    },
  };
}
