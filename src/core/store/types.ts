/**
 * The config store contract. Modelled on etcd's v3 key-value API so the
 * embedded store and the etcd store are interchangeable: one global revision
 * counter bumped by every write, and each item remembers the revision that
 * created it and the one that last modified it (APISIX exposes these as
 * `createdIndex` / `modifiedIndex`).
 */

export interface StoreItem<V = unknown> {
  key: string;
  value: V;
  createRevision: number;
  modRevision: number;
}

export interface PutOptions {
  /**
   * Compare-and-set: the write succeeds only if the key's current modRevision
   * equals this. `0` means "the key must not exist yet".
   */
  expectModRevision?: number;
}

export interface DeleteOptions {
  expectModRevision?: number;
}

export type WatchEvent =
  | { type: 'put'; key: string; value: unknown; createRevision: number; modRevision: number }
  | { type: 'delete'; key: string; modRevision: number }
  /**
   * The watch lost its place (etcd compacted the revisions it needed, or the
   * watch was cancelled): everything under the prefix is now exactly `items`.
   * Consumers replace their state, so no change is lost and no deleted key lingers.
   */
  | { type: 'reset'; items: StoreItem[] };

export interface ListResult {
  items: StoreItem[];
  /** The store revision the listing reflects; watch from `revision + 1` to continue. */
  revision: number;
}

export type WatchListener = (events: WatchEvent[], revision: number) => void;

export interface Watcher {
  close(): void;
}

/** Thrown by put/delete when `expectModRevision` does not hold. */
export class CompareFailedError extends Error {
  constructor(public readonly key: string) {
    super('value changed before overwritten');
    this.name = 'CompareFailedError';
  }
}

/** Thrown when the backing store cannot be reached or written (maps to HTTP 503). */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * A write was sent and no answer came, and whether it was applied could not be
 * learned in time either (maps to HTTP 504 naming the key): it may have been
 * applied, or may still be. Every other failed write was not applied and never
 * will be (StoreUnavailableError, 503).
 */
export class StoreOutcomeUnknownError extends StoreUnavailableError {
  constructor(
    public readonly key: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreOutcomeUnknownError';
  }
}

export interface ConfigStore {
  get(key: string): Promise<StoreItem | undefined>;
  /** All items whose key starts with `prefix`, ordered by key. */
  list(prefix: string): Promise<ListResult>;
  /** Resolves only once the write is durable. */
  put(key: string, value: unknown, opts?: PutOptions): Promise<StoreItem>;
  /** Resolves to false when the key did not exist. */
  delete(key: string, opts?: DeleteOptions): Promise<boolean>;
  /**
   * Events for keys under `prefix` with revision >= `fromRevision`, delivered in
   * revision order, each batch once. Events already committed at call time are
   * replayed first, so list + watch(list.revision + 1) never misses a change.
   */
  watch(prefix: string, fromRevision: number, listener: WatchListener): Watcher;
  /** A new, monotonically increasing id for POST-created objects (APISIX's 20-digit form). */
  nextId(): Promise<string>;
  close(): Promise<void>;
}
