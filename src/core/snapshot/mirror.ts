/**
 * The store's items under /apisix/ as last listed and watched, by table
 * (`routes`, `upstreams`, ...) and id: the one raw view both the snapshot
 * (which compiles from it) and the primary of a worker cluster (which starts
 * a new worker from it) keep current from watch events.
 */
import { KEY_PREFIX } from '../model.js';
import type { StoreItem, WatchEvent } from '../store/types.js';

/** An item the mirror keeps: its value is a JSON object, as every resource the Admin API writes. */
export interface MirroredItem extends StoreItem {
  readonly value: Record<string, unknown>;
}

export interface MirrorOptions {
  /** Tables to keep; all when absent. */
  tables?: readonly string[];
  /** Told about an item whose value is not an object; it is left out. */
  onIgnored?: (key: string) => void;
  /** Why an object of `table` must be left out (beyond Portico's bounds), or undefined to keep it. */
  refuse?: (table: string, value: Record<string, unknown>) => string | undefined;
  /** Told about an object `refuse` left out, and why. */
  onRefused?: (key: string, reason: string) => void;
}

const PREFIX = KEY_PREFIX + '/';
const NONE: ReadonlyMap<string, MirroredItem> = new Map();

export class StoreMirror {
  private readonly tables = new Map<string, Map<string, MirroredItem>>();
  /** Highest store revision seen (listing or watch batch). */
  revision = 0;

  constructor(private readonly opts: MirrorOptions = {}) {
    for (const name of opts.tables ?? []) this.tables.set(name, new Map());
  }

  /** One table's items by id (a consumer's credential has the id `<username>/credentials/<id>`). */
  table(name: string): ReadonlyMap<string, MirroredItem> {
    return this.tables.get(name) ?? NONE;
  }

  /** Every item kept, for a process that starts from the present. */
  items(): MirroredItem[] {
    const out: MirroredItem[] = [];
    for (const table of this.tables.values()) for (const item of table.values()) out.push(item);
    return out;
  }

  /** Replaces everything with a full listing: items missing from it are gone. */
  reset(items: readonly StoreItem[], revision?: number): void {
    for (const table of this.tables.values()) table.clear();
    for (const item of items) this.put(item);
    if (revision !== undefined && revision > this.revision) this.revision = revision;
  }

  /** Applies one watch batch. */
  apply(events: readonly WatchEvent[], revision: number): void {
    for (const ev of events) {
      if (ev.type === 'put') this.put(ev);
      else if (ev.type === 'delete') this.remove(ev.key);
      else this.reset(ev.items);
    }
    if (revision > this.revision) this.revision = revision;
  }

  private place(key: string): { table: Map<string, MirroredItem>; name: string; id: string } | undefined {
    if (!key.startsWith(PREFIX)) return undefined;
    const slash = key.indexOf('/', PREFIX.length);
    if (slash < 0) return undefined;
    const name = key.slice(PREFIX.length, slash);
    let table = this.tables.get(name);
    if (table === undefined) {
      if (this.opts.tables !== undefined) return undefined;
      table = new Map();
      this.tables.set(name, table);
    }
    return { table, name, id: key.slice(slash + 1) };
  }

  private put(item: StoreItem): void {
    const p = this.place(item.key);
    if (p === undefined) return;
    const { value } = item;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.opts.onIgnored?.(item.key);
      p.table.delete(p.id);
      return;
    }
    const refused = this.opts.refuse?.(p.name, value as Record<string, unknown>);
    if (refused !== undefined) {
      this.opts.onRefused?.(item.key, refused);
      p.table.delete(p.id);
      return;
    }
    p.table.set(p.id, { key: item.key, value: value as Record<string, unknown>, createRevision: item.createRevision, modRevision: item.modRevision });
  }

  private remove(key: string): void {
    const p = this.place(key);
    if (p !== undefined) p.table.delete(p.id);
  }
}
