/**
 * A compact string radix tree that answers one question fast: which stored
 * keys are prefixes of this string, longest first. That is the lookup
 * APISIX's radixtree (rax + `radix_tree_up`) performs for prefix routes and
 * wildcard hosts. A lookup follows at most one edge per character of the
 * string, whatever the number of keys. Generic over the stored value, so it
 * knows nothing of routes (router.ts stores candidate lists and host tables).
 */
interface RadixNode<V> {
  label: string;
  children: Map<number, RadixNode<V>> | undefined;
  value: V | undefined;
}

function node<V>(label: string): RadixNode<V> {
  return { label, children: undefined, value: undefined };
}

/** Visitor for `longestPrefixFirst`: return a result to stop, undefined to go on. */
export type PrefixVisitor<V, S, R> = (value: V, state: S) => R | undefined;

export class RadixTree<V> {
  private readonly root: RadixNode<V> = node('');
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** The value stored at exactly `key`, created with `make` when absent. */
  upsert(key: string, make: () => V): V {
    let n = this.root;
    let pos = 0;
    while (pos < key.length) {
      const c = key.charCodeAt(pos);
      const child = n.children?.get(c);
      if (child === undefined) {
        const leaf = node<V>(key.slice(pos));
        (n.children ??= new Map()).set(c, leaf);
        n = leaf;
        pos = key.length;
        break;
      }
      const label = child.label;
      let common = 0;
      const max = Math.min(label.length, key.length - pos);
      while (common < max && label.charCodeAt(common) === key.charCodeAt(pos + common)) common++;
      if (common < label.length) {
        // Split the edge so the shared part becomes its own node.
        const mid = node<V>(label.slice(0, common));
        child.label = label.slice(common);
        mid.children = new Map([[child.label.charCodeAt(0), child]]);
        n.children!.set(c, mid);
        n = mid;
      } else {
        n = child;
      }
      pos += common;
    }
    if (n.value === undefined) {
      n.value = make();
      this.count++;
    }
    return n.value;
  }

  forEachValue(fn: (v: V) => void): void {
    const stack: RadixNode<V>[] = [this.root];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n.value !== undefined) fn(n.value);
      if (n.children !== undefined) for (const c of n.children.values()) stack.push(c);
    }
  }

  /**
   * Visits the values of every stored key that is a prefix of `s`, longest key
   * first, until the visitor returns something other than undefined.
   */
  longestPrefixFirst<S, R>(s: string, visit: PrefixVisitor<V, S, R>, state: S): R | undefined {
    return walk(this.root, s, 0, visit, state);
  }

  /** As longestPrefixFirst, over `s` read from its end (for reversed host suffixes). */
  longestPrefixFirstOfReversed<S, R>(s: string, visit: PrefixVisitor<V, S, R>, state: S): R | undefined {
    return walkReversed(this.root, s, 0, visit, state);
  }
}

function walkReversed<V, S, R>(n: RadixNode<V>, s: string, used: number, visit: PrefixVisitor<V, S, R>, state: S): R | undefined {
  const last = s.length - 1 - used;
  if (n.children !== undefined && last >= 0) {
    const child = n.children.get(s.charCodeAt(last));
    if (child !== undefined) {
      const label = child.label;
      let k = 0;
      if (label.length <= last + 1) while (k < label.length && label.charCodeAt(k) === s.charCodeAt(last - k)) k++;
      if (k === label.length) {
        const r = walkReversed(child, s, used + k, visit, state);
        if (r !== undefined) return r;
      }
    }
  }
  return n.value === undefined ? undefined : visit(n.value, state);
}

function walk<V, S, R>(n: RadixNode<V>, s: string, pos: number, visit: PrefixVisitor<V, S, R>, state: S): R | undefined {
  if (n.children !== undefined && pos < s.length) {
    const child = n.children.get(s.charCodeAt(pos));
    if (child !== undefined && s.startsWith(child.label, pos)) {
      const r = walk(child, s, pos + child.label.length, visit, state);
      if (r !== undefined) return r;
    }
  }
  return n.value === undefined ? undefined : visit(n.value, state);
}
