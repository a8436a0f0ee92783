/**
 * file-logger's open files: one append stream per path, shared by every conf
 * that names it, reopened when the process gets SIGUSR1 (logrotate renames
 * the file, then signals; the next line goes to a new file at the old path).
 * Writes never block a request: each line is queued on the stream, and while
 * a file cannot keep up (more than MAX_QUEUED bytes waiting), lines are
 * dropped and counted rather than held in memory.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from 'pino';

const MAX_QUEUED = 16 * 1024 * 1024;

export class LogFiles {
  private readonly files = new Map<string, WriteStream>();
  private logger: Logger | undefined;
  /** Paths that failed to open, reported once until they work again. */
  private readonly failing = new Set<string>();

  constructor(private readonly onDrop: () => void) {}

  setLogger(logger: Logger): void {
    this.logger = logger;
  }

  write(path: string, line: string): void {
    let s = this.files.get(path);
    if (s === undefined) s = this.open(path);
    if (s.writableLength > MAX_QUEUED) {
      this.onDrop();
      return;
    }
    s.write(line);
  }

  private open(path: string): WriteStream {
    const s = createWriteStream(path, { flags: 'a' });
    s.on('open', () => this.failing.delete(path));
    s.on('error', (err) => {
      if (this.files.get(path) === s) this.files.delete(path);
      if (!this.failing.has(path)) {
        this.failing.add(path);
        this.logger?.error({ err }, `failed to open file: ${path}, error info: ${err.message}`);
      }
    });
    this.files.set(path, s);
    return s;
  }

  /** SIGUSR1: what is queued goes to the old file; the next line opens the path again. */
  reopen(): void {
    const old = [...this.files.values()];
    this.files.clear();
    for (const s of old) s.end();
  }

  /** Shutdown: every queued line written, the files closed. */
  async close(): Promise<void> {
    const old = [...this.files.values()];
    this.files.clear();
    await Promise.all(old.map((s) => new Promise<void>((resolve) => (s.closed || s.destroyed ? resolve() : s.end(() => resolve())))));
  }
}
