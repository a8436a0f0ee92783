/**
 * Data-plane workers outlive a main process that dies (kill -9, a crash in
 * the store), serving their last configuration, so routes that were fine keep
 * answering. They hold the listening sockets, so the next main process on the
 * same data dir retires them before it listens: each primary records its
 * workers' PIDs in the data dir, and a new one SIGTERMs those whose primary is
 * gone (they drain, as on any SIGTERM) and waits for them to exit.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

const FILE = 'portico.workers';
const RETIRE_WAIT_MS = 10_000;

interface Record {
  primary: number;
  workers: number[];
}

export function recordWorkers(dataDir: string, workers: number[]): void {
  try {
    writeFileSync(join(dataDir, FILE), JSON.stringify({ primary: process.pid, workers } satisfies Record), { mode: 0o600 });
  } catch {
    // Best effort: without the record a successor's listen fails with the port in use, and says so.
  }
}

export function forgetWorkers(dataDir: string): void {
  rmSync(join(dataDir, FILE), { force: true });
}

/** SIGTERMs the workers a dead primary left behind in `dataDir` and waits (bounded) until they exited. */
export async function retireOrphans(dataDir: string, logger: Logger): Promise<void> {
  let rec: Record;
  try {
    rec = JSON.parse(readFileSync(join(dataDir, FILE), 'utf8')) as Record;
  } catch {
    return;
  }
  if (rec.primary === process.pid || alive(rec.primary)) return;
  const orphans = rec.workers.filter((pid) => alive(pid) && isWorkerOf(pid));
  if (orphans.length === 0) return forgetWorkers(dataDir);
  logger.warn({ pids: orphans, primary: rec.primary }, 'taking over from data-plane workers left serving by a main process that died');
  for (const pid of orphans) signal(pid, 'SIGTERM');
  const until = Date.now() + RETIRE_WAIT_MS;
  while (orphans.some(alive) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  for (const pid of orphans.filter(alive)) signal(pid, 'SIGKILL');
  forgetWorkers(dataDir);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A PID can be reused: only a process running Portico's worker entry point is signalled. */
function isWorkerOf(pid: number): boolean {
  try {
    return /\/worker\.(js|ts)\0/.test(readFileSync(`/proc/${pid}/cmdline`, 'latin1') + '\0');
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Exited meanwhile.
  }
}
