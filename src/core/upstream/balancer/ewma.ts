/**
 * APISIX's ewma balancer (after Finagle's PeakEwma): each node keeps an
 * exponentially weighted moving average of its latency that decays towards 0
 * with a 10 s time constant; a pick draws two distinct usable nodes at random
 * and takes the one with the lower decayed score. Weights are ignored, as in
 * APISIX. A node never measured scores 0, so new nodes get tried.
 */
import type { RequestContext } from '../../plugin/ctx.js';
import { usable, type Balancer, type NodeState } from '../types.js';

const DECAY_MS = 10_000;

export function createEwma(nodes: readonly NodeState[], now: () => number = performance.now.bind(performance)): Balancer {
  const ewma = new Float64Array(nodes.length);
  // -Infinity: never measured, so the first sample is taken as is.
  const touched = new Float64Array(nodes.length).fill(-Infinity);
  const index = new Map<NodeState, number>();
  nodes.forEach((node, i) => index.set(node, i));

  const decayed = (i: number, rtt: number, at: number): number => {
    const w = Math.exp(-Math.max(at - touched[i]!, 0) / DECAY_MS);
    return ewma[i]! * w + rtt * (1 - w);
  };

  /** The k-th usable node (0-based); scanning avoids building a filtered list per pick. */
  const nth = (k: number, exclude: ReadonlySet<string> | undefined): number => {
    for (let i = 0; i < nodes.length; i++) {
      if (usable(nodes[i]!, exclude) && k-- === 0) return i;
    }
    return -1;
  };

  return {
    pick(_ctx: RequestContext, exclude: ReadonlySet<string> | undefined): NodeState | undefined {
      let count = 0;
      for (let i = 0; i < nodes.length; i++) if (usable(nodes[i]!, exclude)) count++;
      if (count === 0) return undefined;
      if (count === 1) return nodes[nth(0, exclude)];
      const a = Math.floor(Math.random() * count);
      let b = Math.floor(Math.random() * (count - 1));
      if (b >= a) b++;
      const ia = nth(a, exclude);
      const ib = nth(b, exclude);
      const at = now();
      return decayed(ia, 0, at) > decayed(ib, 0, at) ? nodes[ib] : nodes[ia];
    },
    observe(node: NodeState, latencyMs: number): void {
      const i = index.get(node);
      if (i === undefined) return;
      const at = now();
      ewma[i] = decayed(i, latencyMs, at);
      touched[i] = at;
    },
  };
}
