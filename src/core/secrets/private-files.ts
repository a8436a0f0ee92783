/**
 * The data dir holds the config store (TLS private keys among it) and the
 * generated keys: only the user Portico runs as may read it. Directories are
 * made 0700 and files 0600 whatever the umask, and ones left more open by an
 * earlier version (or by hand) are tightened when Portico opens them.
 */
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

function tighten(path: string, mode: number): void {
  if ((statSync(path).mode & 0o777 & ~mode) !== 0) chmodSync(path, mode);
}

/** Creates `dir` (and parents) if missing; `dir` itself ends up 0700. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  tighten(dir, DIR_MODE);
}

/**
 * Creates `file` empty if missing; it ends up 0600. SQLite gives its -wal and
 * -shm files the mode of the database file, so making the database file
 * private first covers them too.
 */
export function ensurePrivateFile(file: string): void {
  closeSync(openSync(file, 'a', FILE_MODE));
  tighten(file, FILE_MODE);
}

/** Tightens `file` to 0600 if it exists. */
export function tightenIfExists(file: string): void {
  try {
    tighten(file, FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
