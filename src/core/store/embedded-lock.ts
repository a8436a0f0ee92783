/**
 * The embedded store belongs to one gateway: a second one on the same data
 * dir would take Admin writes its data plane never sees (it watches only its
 * own writes), so it refuses to start instead. Clustering is what etcd is for.
 *
 * The lock is an OS record lock (fcntl), held through a tiny SQLite file in
 * EXCLUSIVE locking mode: the kernel drops it when the holder dies, even by
 * kill -9, so a crash never leaves a stale lock behind. The holder's PID is
 * written beside it only to be named in the refusal; it is never trusted as
 * the lock itself. The store's own database stays in shared mode so
 * `portico config dump --data-dir` can read a running gateway's store.
 */
import Database from 'better-sqlite3';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePrivateFile } from '../secrets/private-files.js';
import { StoreUnavailableError } from './types.js';

const LOCK_FILE = 'portico.lock';
const PID_FILE = 'portico.pid';

/** Another live process holds the data dir. */
export class DataDirLockedError extends StoreUnavailableError {
  constructor(
    public readonly dataDir: string,
    public readonly holder: number | undefined,
  ) {
    super(
      `the embedded store in ${dataDir} (deployment.embedded.data_dir) is in use by ${holder === undefined ? 'another process' : `process ${holder}`}; ` +
        'one gateway per data dir (use etcd, deployment.config_provider: etcd, for several nodes)',
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  release(): void;
}

/** Takes the data dir's lock or throws DataDirLockedError naming the holder. */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = join(dataDir, LOCK_FILE);
  ensurePrivateFile(file);
  const db = new Database(file);
  try {
    db.pragma('busy_timeout = 0');
    db.pragma('locking_mode = EXCLUSIVE');
    // A write takes the EXCLUSIVE lock, which this locking mode keeps until the connection closes.
    db.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS held (pid INTEGER); DELETE FROM held; COMMIT');
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new DataDirLockedError(dataDir, readHolder(dataDir));
    throw err;
  }
  const pidFile = join(dataDir, PID_FILE);
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  return {
    release() {
      if (!db.open) return;
      if (readHolder(dataDir) === process.pid) rmSync(pidFile, { force: true });
      db.close();
    },
  };
}

function readHolder(dataDir: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(join(dataDir, PID_FILE), 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
