/**
 * Consistent hashing, as APISIX's chash balancer: a ring of virtual points
 * (256 per node of average weight, proportional to weight) so that adding or
 * removing a node moves only about 1/N of the keys. The key is read per
 * `hash_on` (vars, header, cookie, consumer, vars_combinations); an empty key
 * falls back to the client address, as APISIX does. Nodes that are unhealthy
 * or already tried are skipped by walking the ring onwards (APISIX's
 * `picker:next`), which keeps every other key where it was.
 */
import type { RequestContext } from '../../plugin/ctx.js';
import type { UpstreamConf } from '../../model.js';
import { hash32 } from '../hash.js';
import { usable, type Balancer, type NodeState } from '../types.js';

const POINTS_PER_AVERAGE_NODE = 256;

type KeyReader = (ctx: RequestContext) => string | undefined;

/** `$var` / `${var}` segments of a vars_combinations key, split once at config time. */
function compileCombination(template: string): KeyReader {
  const literals: string[] = [];
  const names: string[] = [];
  const re = /\\\$|\$\{([A-Za-z0-9_-]+)\}|\$([A-Za-z0-9_-]+)/g;
  let last = 0;
  let text = '';
  for (let m = re.exec(template); m; m = re.exec(template)) {
    text += template.slice(last, m.index);
    last = re.lastIndex;
    if (m[0] === '\\$') {
      text += '$';
      continue;
    }
    literals.push(text);
    names.push((m[1] ?? m[2])!);
    text = '';
  }
  const tail = text + template.slice(last);
  if (names.length === 0) return () => tail;
  return (ctx) => {
    let out = '';
    for (let i = 0; i < names.length; i++) out += literals[i]! + (ctx.var.get(names[i]!) ?? '');
    return out + tail;
  };
}

export function compileKeyReader(conf: UpstreamConf): KeyReader {
  const key = conf.key ?? '';
  switch (conf.hash_on ?? 'vars') {
    case 'consumer':
      return (ctx) => ctx.consumer?.username;
    case 'header': {
      const name = `http_${key.toLowerCase().replace(/-/g, '_')}`;
      return (ctx) => ctx.var.get(name);
    }
    case 'cookie': {
      const name = `cookie_${key}`;
      return (ctx) => ctx.var.get(name);
    }
    case 'vars_combinations':
      return compileCombination(key);
    default:
      return (ctx) => ctx.var.get(key);
  }
}

export function hashKeyOf(read: KeyReader, ctx: RequestContext): string {
  const k = read(ctx);
  return k === undefined || k === '' ? ctx.var.get('remote_addr') ?? ctx.remoteAddr : k;
}

export function createChash(nodes: readonly NodeState[], conf: UpstreamConf): Balancer {
  const readKey = compileKeyReader(conf);
  let totalWeight = 0;
  for (const n of nodes) totalWeight += n.weight;
  const average = nodes.length ? totalWeight / nodes.length : 1;

  // Points are labelled by the node's own key, so a node's points do not move when others change.
  const points: Array<{ h: number; node: number }> = [];
  nodes.forEach((node, i) => {
    const count = Math.max(1, Math.round((POINTS_PER_AVERAGE_NODE * node.weight) / average));
    for (let p = 0; p < count; p++) points.push({ h: hash32(`${node.key}#${p}`), node: i });
  });
  points.sort((a, b) => a.h - b.h || a.node - b.node);
  const ringHash = Uint32Array.from(points, (p) => p.h);
  const ringNode = Uint32Array.from(points, (p) => p.node);

  const first = (h: number): number => {
    let lo = 0;
    let hi = ringHash.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ringHash[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === ringHash.length ? 0 : lo;
  };

  return {
    pick(ctx: RequestContext, exclude: ReadonlySet<string> | undefined): NodeState | undefined {
      const size = ringHash.length;
      if (size === 0) return undefined;
      const start = first(hash32(hashKeyOf(readKey, ctx)));
      for (let k = 0; k < size; k++) {
        const node = nodes[ringNode[(start + k) % size]!]!;
        if (usable(node, exclude)) return node;
      }
      return undefined;
    },
  };
}
