/**
 * The reuse-or-build step every kind of compiled object goes through: take
 * the previous generation's object when its revKey is unchanged, otherwise
 * build it anew. Exact where an LRU would be approximate: a live object is
 * never evicted and a dead one is dropped at the next compile.
 */
import type { Revisioned } from './types.js';

export interface Rebuilt<T> {
  readonly compiled: Map<string, T>;
  /** Something was rebuilt (even if it then failed to compile), or an object went away. */
  readonly changed: boolean;
}

/**
 * `revKeyOf` returns undefined to leave an item out (a disabled route, say);
 * `build` returns undefined when the item does not compile (it was logged);
 * `keyOf` names a newly built object in the result (its id by default).
 */
export function reuseOrBuild<I, T extends Revisioned>(
  prev: ReadonlyMap<string, T>,
  items: Iterable<readonly [string, I]>,
  revKeyOf: (id: string, item: I) => string | undefined,
  build: (id: string, item: I, revKey: string) => T | undefined,
  keyOf: (id: string, compiled: T) => string = (id) => id,
): Rebuilt<T> {
  const compiled = new Map<string, T>();
  let changed = false;
  for (const [id, item] of items) {
    const revKey = revKeyOf(id, item);
    if (revKey === undefined) continue;
    const old = prev.get(id);
    if (old && old.revKey === revKey) {
      compiled.set(id, old);
      continue;
    }
    changed = true;
    const built = build(id, item, revKey);
    if (built) compiled.set(keyOf(id, built), built);
  }
  return { compiled, changed: changed || compiled.size !== prev.size };
}
