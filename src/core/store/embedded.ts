/**
 * The default config store: SQLite in WAL mode through better-sqlite3, so a
 * fresh machine needs nothing else running. Every write is one transaction
 * committed with synchronous=FULL before the promise resolves, so an
 * acknowledged write survives kill -9 (and power loss); WAL means a torn write
 * is rolled back on open instead of corrupting the file.
 *
 * Revisions follow etcd: one counter bumped by each write; an event log keeps
 * recent changes so watch() can replay from a past revision.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { ensurePrivateDir, ensurePrivateFile, tightenIfExists } from '../secrets/private-files.js';
import { DataDirLockedError, lockDataDir, type DataDirLock } from './embedded-lock.js';
import {
  CompareFailedError,
  StoreUnavailableError,
  type ConfigStore,
  type DeleteOptions,
  type ListResult,
  type PutOptions,
  type StoreItem,
  type WatchEvent,
  type WatchListener,
  type Watcher,
} from './types.js';

/** Events kept for replay; older watch starts get a full resync from list(). */
const EVENT_LOG_SIZE = 10_000;

interface Row {
  key: string;
  value: string;
  create_rev: number;
  mod_rev: number;
}

interface EventRow {
  rev: number;
  key: string;
  type: 'put' | 'delete';
  value: string | null;
  create_rev: number;
}

/** This store never loses its place, so it emits only per-key events. */
type KeyEvent = Exclude<WatchEvent, { type: 'reset' }>;

interface WatchEntry {
  prefix: string;
  listener: WatchListener;
}

export class EmbeddedStore implements ConfigStore {
  private readonly db: Database.Database;
  private readonly watchers = new Set<WatchEntry>();
  private closed = false;
  private readonly stmt;

  /** `lock`: the data dir's, released when the store closes (openEmbeddedStore). */
  constructor(
    file: string,
    private readonly lock?: DataDirLock,
  ) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS events (rev INTEGER PRIMARY KEY, key TEXT NOT NULL, type TEXT NOT NULL, value TEXT, create_rev INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('gen_id', 0);
    `);
    this.stmt = {
      get: this.db.prepare<[string], Row>('SELECT key, value, create_rev, mod_rev FROM kv WHERE key = ?'),
      list: this.db.prepare<[string, string], Row>(
        'SELECT key, value, create_rev, mod_rev FROM kv WHERE key >= ? AND key < ? ORDER BY key',
      ),
      revision: this.db.prepare<[], { value: number }>("SELECT value FROM meta WHERE name = 'revision'"),
      bump: this.db.prepare<[string], { value: number }>(
        'UPDATE meta SET value = value + 1 WHERE name = ? RETURNING value',
      ),
      upsert: this.db.prepare<[string, string, number, number]>(
        'INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev',
      ),
      del: this.db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
      logEvent: this.db.prepare<[number, string, string, string | null, number]>(
        'INSERT INTO events (rev, key, type, value, create_rev) VALUES (?, ?, ?, ?, ?)',
      ),
      trimEvents: this.db.prepare<[number]>('DELETE FROM events WHERE rev <= ?'),
      eventsFrom: this.db.prepare<[number], EventRow>(
        'SELECT rev, key, type, value, create_rev FROM events WHERE rev >= ? ORDER BY rev',
      ),
      oldestEvent: this.db.prepare<[], { rev: number | null }>('SELECT MIN(rev) AS rev FROM events'),
    };
  }

  async get(key: string): Promise<StoreItem | undefined> {
    this.assertOpen();
    const row = this.stmt.get.get(key);
    return row ? toItem(row) : undefined;
  }

  async list(prefix: string): Promise<ListResult> {
    this.assertOpen();
    const read = this.db.transaction(() => ({
      rows: this.stmt.list.all(prefix, prefixEnd(prefix)),
      revision: this.stmt.revision.get()!.value,
    }));
    const { rows, revision } = read();
    return { items: rows.map(toItem), revision };
  }

  async put(key: string, value: unknown, opts: PutOptions = {}): Promise<StoreItem> {
    this.assertOpen();
    const json = JSON.stringify(value);
    const write = this.db.transaction((): { item: StoreItem; event: KeyEvent } => {
      const current = this.stmt.get.get(key);
      checkExpected(key, current, opts.expectModRevision);
      const rev = this.stmt.bump.get('revision')!.value;
      const createRev = current ? current.create_rev : rev;
      this.stmt.upsert.run(key, json, createRev, rev);
      this.stmt.logEvent.run(rev, key, 'put', json, createRev);
      if (rev % 1000 === 0) this.stmt.trimEvents.run(rev - EVENT_LOG_SIZE);
      const item = { key, value: JSON.parse(json) as unknown, createRevision: createRev, modRevision: rev };
      return { item, event: { type: 'put', key, value: item.value, createRevision: createRev, modRevision: rev } };
    });
    const { item, event } = this.run(write);
    this.emit([event], item.modRevision);
    return item;
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<boolean> {
    this.assertOpen();
    const remove = this.db.transaction((): KeyEvent | undefined => {
      const current = this.stmt.get.get(key);
      checkExpected(key, current, opts.expectModRevision);
      if (!current) return undefined;
      const rev = this.stmt.bump.get('revision')!.value;
      this.stmt.del.run(key);
      this.stmt.logEvent.run(rev, key, 'delete', null, current.create_rev);
      return { type: 'delete', key, modRevision: rev };
    });
    const event = this.run(remove);
    if (!event) return false;
    this.emit([event], event.modRevision);
    return true;
  }

  watch(prefix: string, fromRevision: number, listener: WatchListener): Watcher {
    this.assertOpen();
    const entry: WatchEntry = { prefix, listener };
    const oldest = this.stmt.oldestEvent.get()?.rev;
    const revision = this.stmt.revision.get()!.value;
    if (fromRevision <= revision) {
      if (oldest == null || fromRevision < oldest) {
        throw new StoreUnavailableError(`required revision ${fromRevision} has been compacted`);
      }
      const replay = this.stmt.eventsFrom
        .all(fromRevision)
        .filter((e) => e.key.startsWith(prefix))
        .map(fromEventRow);
      if (replay.length > 0) queueMicrotask(() => this.watchers.has(entry) && listener(replay, revision));
    }
    this.watchers.add(entry);
    return { close: () => void this.watchers.delete(entry) };
  }

  async nextId(): Promise<string> {
    this.assertOpen();
    const id = this.run(this.db.transaction(() => this.stmt.bump.get('gen_id')!.value));
    return String(id).padStart(20, '0');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watchers.clear();
    this.db.close();
    this.lock?.release();
  }

  private run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof CompareFailedError) throw err;
      throw new StoreUnavailableError(`config store write failed: ${(err as Error).message}`, { cause: err });
    }
  }

  private emit(events: KeyEvent[], revision: number): void {
    for (const w of this.watchers) {
      const mine = events.filter((e) => e.key.startsWith(w.prefix));
      if (mine.length === 0) continue;
      try {
        w.listener(mine, revision);
      } catch {
        // A failing watcher must not fail the write that was already committed.
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('config store is closed');
  }
}

function checkExpected(key: string, current: Row | undefined, expected: number | undefined): void {
  if (expected === undefined) return;
  const actual = current ? current.mod_rev : 0;
  if (actual !== expected) throw new CompareFailedError(key);
}

function toItem(row: Row): StoreItem {
  return { key: row.key, value: JSON.parse(row.value) as unknown, createRevision: row.create_rev, modRevision: row.mod_rev };
}

function fromEventRow(e: EventRow): KeyEvent {
  return e.type === 'put'
    ? { type: 'put', key: e.key, value: JSON.parse(e.value!) as unknown, createRevision: e.create_rev, modRevision: e.rev }
    : { type: 'delete', key: e.key, modRevision: e.rev };
}

/** The first key after every key starting with `prefix` (etcd's range_end). */
function prefixEnd(prefix: string): string {
  if (prefix === '') return '\uffff';
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/**
 * Opens the gateway's store in `dataDir`, holding the dir's lock (embedded-lock.ts) while open. Any failure
 * (held by another gateway, a read-only or unwritable dir) is a StoreUnavailableError naming the dir: the
 * operator's to fix, said in one line.
 */
export function openEmbeddedStore(dataDir: string): EmbeddedStore {
  let lock: DataDirLock | undefined;
  try {
    ensurePrivateDir(dataDir);
    lock = lockDataDir(dataDir);
    const file = join(dataDir, 'portico.db');
    ensurePrivateFile(file);
    // Left by an earlier run with the umask's mode: SQLite reopens them as they are.
    for (const suffix of ['-wal', '-shm', '-journal']) tightenIfExists(file + suffix);
    return new EmbeddedStore(file, lock);
  } catch (err) {
    lock?.release();
    if (err instanceof DataDirLockedError) throw err;
    throw new StoreUnavailableError(`cannot open the embedded store in ${dataDir} (deployment.embedded.data_dir): ${(err as Error).message}`, { cause: err });
  }
}
