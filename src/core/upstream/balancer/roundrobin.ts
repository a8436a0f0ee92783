/**
 * nginx's smooth weighted round robin (ngx_http_upstream_get_peer): every pick
 * adds each usable node's weight to its current weight, takes the largest and
 * subtracts the total from it. Weights 5,1,1 give a a b a c a a: heavy nodes are
 * spread out rather than sent in bursts, which keeps small upstreams evenly loaded.
 */
import type { RequestContext } from '../../plugin/ctx.js';
import { usable, type Balancer, type NodeState } from '../types.js';

export function createRoundRobin(nodes: readonly NodeState[]): Balancer {
  const current = new Float64Array(nodes.length);
  return {
    pick(_ctx: RequestContext, exclude: ReadonlySet<string> | undefined): NodeState | undefined {
      let best = -1;
      let total = 0;
      for (let i = 0; i < nodes.length; i++) {
        const node = nodes[i]!;
        if (!usable(node, exclude)) continue;
        current[i]! += node.weight;
        total += node.weight;
        if (best < 0 || current[i]! > current[best]!) best = i;
      }
      if (best < 0) return undefined;
      current[best]! -= total;
      return nodes[best];
    },
  };
}
