/**
 * The store of APISIX's standalone modes: the whole configuration in memory,
 * replaced as one document (a file that changed, or PUT /apisix/admin/configs)
 * rather than written key by key. A replacement is one revision: objects that
 * did not change keep their revisions, so the data plane carries their compiled
 * state over (an untouched upstream keeps its pools and health), and the ones
 * that did change arrive in one watch batch, so no request sees half a document.
 *
 * Writes through put/delete are refused: in these modes the document is the
 * only source, as APISIX's Admin API is off (file) or limited to /configs (API).
 */
import {
  StoreUnavailableError,
  type ConfigStore,
  type ListResult,
  type StoreItem,
  type WatchEvent,
  type WatchListener,
  type Watcher,
} from './types.js';
import type { StandaloneItem } from './standalone-doc.js';

/** Batches kept for a watch that starts behind; older starts get the whole listing as a reset. */
const HISTORY = 64;

interface Held {
  readonly key: string;
  /** The value as JSON: compared to spot an unchanged object, parsed afresh for each reader. */
  readonly json: string;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly modifiedIndex: number | undefined;
}

interface WatchEntry {
  prefix: string;
  listener: WatchListener;
}

export interface ReplaceOptions {
  /**
   * API-driven mode: an item whose `modifiedIndex` equals the one it had keeps
   * its old value (APISIX's per-item index), whatever the new value says.
   */
  honourModifiedIndex?: boolean;
}

export interface ReplaceResult {
  revision: number;
  /** Objects created, changed or deleted by this replacement. */
  changed: number;
}

export class StandaloneStore implements ConfigStore {
  private items = new Map<string, Held>();
  private revision = 0;
  private readonly history: Array<{ revision: number; events: WatchEvent[] }> = [];
  private readonly watchers = new Set<WatchEntry>();
  private closed = false;

  /** Swaps in a whole configuration (already validated) in one revision. */
  replace(next: readonly StandaloneItem[], opts: ReplaceOptions = {}): ReplaceResult {
    this.assertOpen();
    const rev = this.revision + 1;
    const items = new Map<string, Held>();
    const events: WatchEvent[] = [];
    for (const item of next) {
      const prev = this.items.get(item.key);
      if (prev && opts.honourModifiedIndex && item.modifiedIndex !== undefined && item.modifiedIndex === prev.modifiedIndex) {
        items.set(item.key, prev);
        continue;
      }
      const json = JSON.stringify(item.value);
      if (prev && prev.json === json) {
        items.set(item.key, prev.modifiedIndex === item.modifiedIndex ? prev : { ...prev, modifiedIndex: item.modifiedIndex });
        continue;
      }
      const held: Held = {
        key: item.key,
        json,
        createRevision: prev ? prev.createRevision : rev,
        modRevision: rev,
        modifiedIndex: item.modifiedIndex,
      };
      items.set(item.key, held);
      events.push({ type: 'put', key: held.key, value: JSON.parse(json) as unknown, createRevision: held.createRevision, modRevision: rev });
    }
    for (const key of this.items.keys()) if (!items.has(key)) events.push({ type: 'delete', key, modRevision: rev });
    this.items = items;
    if (events.length === 0) return { revision: this.revision, changed: 0 };
    this.revision = rev;
    this.history.push({ revision: rev, events });
    if (this.history.length > HISTORY) this.history.shift();
    for (const w of this.watchers) this.deliver(w, events, rev);
    return { revision: rev, changed: events.length };
  }

  async get(key: string): Promise<StoreItem | undefined> {
    this.assertOpen();
    const held = this.items.get(key);
    return held ? plain(held) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    this.assertOpen();
    const items = [...this.items.values()].filter((i) => i.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { items: items.map(plain), revision: this.revision };
  }

  async put(): Promise<StoreItem> {
    throw readOnly();
  }

  async delete(): Promise<boolean> {
    throw readOnly();
  }

  async nextId(): Promise<string> {
    throw readOnly();
  }

  watch(prefix: string, fromRevision: number, listener: WatchListener): Watcher {
    this.assertOpen();
    const entry: WatchEntry = { prefix, listener };
    if (fromRevision <= this.revision) {
      const oldest = this.history[0]?.revision ?? this.revision + 1;
      const revision = this.revision;
      if (fromRevision < oldest) {
        const items = [...this.items.values()].filter((i) => i.key.startsWith(prefix)).map(plain);
        queueMicrotask(() => this.watchers.has(entry) && listener([{ type: 'reset', items }], revision));
      } else {
        const replay = this.history.filter((b) => b.revision >= fromRevision).flatMap((b) => b.events);
        queueMicrotask(() => this.watchers.has(entry) && this.deliver(entry, replay, revision));
      }
    }
    this.watchers.add(entry);
    return { close: () => void this.watchers.delete(entry) };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watchers.clear();
  }

  private deliver(w: WatchEntry, events: readonly WatchEvent[], revision: number): void {
    const mine = events.filter((e) => e.type === 'reset' || e.key.startsWith(w.prefix));
    if (mine.length === 0) return;
    try {
      w.listener(mine, revision);
    } catch {
      // One failing watcher must not keep the others (or the replacement) from completing.
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('config store is closed');
  }
}

/** A copy: readers (the snapshot fills defaults in place) must not reach the held value. */
function plain(held: Held): StoreItem {
  return { key: held.key, value: JSON.parse(held.json) as unknown, createRevision: held.createRevision, modRevision: held.modRevision };
}

function readOnly(): StoreUnavailableError {
  return new StoreUnavailableError('the configuration is read-only in standalone mode: change the standalone document instead');
}
