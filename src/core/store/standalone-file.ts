/**
 * APISIX's file-driven standalone mode: the whole configuration is one file
 * (conf/apisix.yaml, or $PORTICO_STANDALONE_FILE), reloaded when it changes.
 * APISIX polls every second; here a watch on the file's directory answers at
 * once (an editor or `git checkout` replaces the file by renaming, which a
 * watch on the file itself would lose) and the one-second poll catches what a
 * watch misses (network filesystems, a watch that failed).
 *
 * A new text is parsed and the whole document validated (the Admin API's
 * checks, handed in) before it replaces anything: a file that fails, or a YAML
 * file without its `#END`, is refused with every reason in the log (file,
 * resource, id, field) and the last good configuration keeps serving.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/project-root.js';
import {
  describeIssue,
  documentItems,
  parseStandalone,
  type DocumentValidator,
  type StandaloneFormat,
} from './standalone-doc.js';
import { StandaloneStore } from './standalone.js';

export interface StandaloneFileOptions {
  file: string;
  format: StandaloneFormat;
  validate: DocumentValidator;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  /** How often the file's stat is checked, besides the watch (APISIX: every second). */
  pollMs?: number;
}

type Outcome = { ok: true; changed: number } | { ok: false; reason: string; details: string[] };

export class StandaloneFileStore extends StandaloneStore {
  private lastText: string | undefined;
  private lastStat = '';
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly opts: StandaloneFileOptions) {
    super();
  }

  /** Loads the file once; a file that cannot be served stops start-up with its reasons. */
  async start(): Promise<void> {
    const outcome = await this.load();
    if (!outcome.ok) throw new ConfigError([outcome.reason, ...outcome.details].join('\n  '));
    const { file } = this.opts;
    try {
      this.watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
        if (name === null || name === basename(file)) this.check();
      });
      this.watcher.on('error', (err) => this.opts.logger.warn({ err, file }, 'standalone: watching the directory failed; the one-second poll goes on'));
    } catch (err) {
      this.opts.logger.warn({ err, file }, 'standalone: cannot watch the directory; polling every second');
    }
    this.timer = setInterval(() => void this.poll(), this.opts.pollMs ?? 1000);
    this.timer.unref();
  }

  override async close(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    await this.running;
    await super.close();
  }

  private async poll(): Promise<void> {
    try {
      const s = await stat(this.opts.file);
      const sig = `${s.ino}:${s.size}:${s.mtimeMs}`;
      if (sig !== this.lastStat) this.check();
    } catch {
      // Missing for now (being replaced, or deleted): the last good configuration keeps serving.
    }
  }

  /** Runs one reload at a time; a change seen during one runs another after it. */
  private check(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.reload().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.check();
      }
    });
  }

  private async reload(): Promise<void> {
    const { file, logger } = this.opts;
    const outcome = await this.load();
    if (outcome.ok) {
      if (outcome.changed > 0) logger.warn({ file, changed: outcome.changed }, `config file ${file} reloaded.`);
      return;
    }
    if (outcome.reason === '') return;
    logger.error({ file, reasons: outcome.details }, `standalone: ${outcome.reason}; the last good configuration keeps serving`);
    for (const line of outcome.details) logger.error({ file }, `${file}: ${line}`);
  }

  /** Reads, parses and validates the file, and swaps it in when it is good and new. */
  private async load(): Promise<Outcome> {
    const { file, format, validate } = this.opts;
    let text: string;
    try {
      const s = await stat(file);
      this.lastStat = `${s.ino}:${s.size}:${s.mtimeMs}`;
      text = await readFile(file, 'utf8');
    } catch (err) {
      return { ok: false, reason: `cannot read standalone file ${file}: ${(err as Error).message}`, details: [] };
    }
    // Unchanged text (a touch, a second event for one write) or a refusal already reported.
    if (text === this.lastText) return { ok: false, reason: '', details: [] };
    this.lastText = text;
    let doc;
    try {
      doc = parseStandalone(text, format, file, this.opts.env ?? process.env);
    } catch (err) {
      return { ok: false, reason: `refused ${file}: ${(err as Error).message}`, details: [] };
    }
    const issues = await validate(doc);
    if (issues.length > 0) {
      return { ok: false, reason: `refused ${file}: ${issues.length} invalid item${issues.length === 1 ? '' : 's'}`, details: issues.map(describeIssue) };
    }
    return { ok: true, changed: this.replace(documentItems(doc)).changed };
  }
}

export async function openStandaloneFile(opts: StandaloneFileOptions): Promise<StandaloneFileStore> {
  const store = new StandaloneFileStore(opts);
  await store.start();
  return store;
}
