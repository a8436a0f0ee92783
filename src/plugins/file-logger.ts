/**
 * file-logger (APISIX priority 399, apisix/plugins/file-logger.lua): APISIX's
 * log entry for each request as one JSON line appended to `path` (the conf's,
 * else plugin_metadata's), only when `match` (if set) matches. No batching,
 * as in APISIX; the write is queued on the file's stream (file-logger/log-files.ts).
 *
 * Log rotation: SIGUSR1 makes every process reopen its files. Signal the main
 * process (as `kill -USR1` on APISIX's master): it reopens its own and asks
 * each data-plane worker to reopen theirs. A SIGUSR1 listener replaces Node's
 * own use of the signal (starting the inspector) while file-logger is enabled.
 *
 * Differences from APISIX: a conf without `path` is accepted even when the
 * metadata has none yet (the Admin API's check cannot read plugin_metadata);
 * such requests are not logged and the error is reported once per conf. A
 * relative path is taken from the gateway's working directory.
 */
import { resolve } from 'node:path';
import { compileExpr, definePlugin, type CompiledExpr, type PluginCleanup, type PluginInitContext, type RequestContext } from '../core/plugin/index.js';
import { countDiscarded } from './lib/batch-metrics.js';
import { checkLogConf, compileLogConf, logMetadataProperties, logSchemaProperties, type LogConf } from './lib/log-conf.js';
import { logVars } from './lib/log-entry.js';
import { logEntryJson } from './lib/log-json.js';
import { initLogger, loggerAccess, loggerBeforeProxy, type LoggerCompiled } from './lib/logger-plugin.js';
import { LogFiles } from './file-logger/log-files.js';

const NAME = 'file-logger';
const LABEL = 'file logger';
/** How long main waits for each worker to say it reopened its files. */
const REOPEN_ANSWER_MS = 2000;

export interface FileLoggerConf extends LogConf {
  path?: string;
  match?: unknown[][];
}

interface Compiled extends LoggerCompiled<FileLoggerConf> {
  readonly path: string | undefined;
  readonly match: readonly CompiledExpr[] | undefined;
  /** The missing-path error was reported for this conf. */
  reported: boolean;
}

const schema = {
  type: 'object',
  properties: {
    path: { type: 'string' },
    ...logSchemaProperties,
    match: { type: 'array', maxItems: 20, items: { type: 'array' } },
  },
};

const metadataSchema = {
  type: 'object',
  properties: { path: { type: 'string' }, ...logMetadataProperties },
};

const files = new LogFiles(() => countDiscarded(LABEL));
let logger: PluginInitContext['logger'] | undefined;

function check(conf: FileLoggerConf): string | undefined {
  for (const rule of conf.match ?? []) {
    try {
      compileExpr(rule);
    } catch (err) {
      return `failed to validate the 'match' expression: ${(err as Error).message}`;
    }
  }
  return checkLogConf(conf);
}

async function init(ctx: PluginInitContext): Promise<PluginCleanup> {
  logger = ctx.logger;
  files.setLogger(ctx.logger);
  const stopLogger = initLogger(ctx);
  // In main with workers: each worker reopens when main collects this.
  const workers = ctx.shared.gathered<boolean>('reopen', () => {
    files.reopen();
    return true;
  }, REOPEN_ANSWER_MS);
  const onSignal = (): void => {
    files.reopen();
    if (ctx.process === 'main' && ctx.dataPlaneInWorkers) {
      workers.collect().catch((err: unknown) => ctx.logger.error({ err }, 'file-logger: a worker did not reopen its log files'));
    }
    ctx.logger.info('file-logger: log files reopened (SIGUSR1)');
  };
  process.on('SIGUSR1', onSignal);
  return async () => {
    process.off('SIGUSR1', onSignal);
    workers.close();
    await files.close();
    await stopLogger();
  };
}

export default definePlugin({
  name: NAME,
  version: '0.1',
  priority: 399,
  schema,
  metadata_schema: metadataSchema,
  check: (conf: FileLoggerConf) => check(conf),
  compile(conf: FileLoggerConf): Compiled {
    return {
      conf,
      log: compileLogConf(conf),
      path: conf.path === undefined ? undefined : resolve(conf.path),
      match: conf.match?.map((rule) => compileExpr(rule)),
      reported: false,
    };
  },
  init,
  access: loggerAccess,
  before_proxy: loggerBeforeProxy,
  log(c: Compiled, ctx: RequestContext): void {
    // log-util's is_match: the entry is written when any rule matches.
    if (c.match !== undefined) {
      const vars = logVars(ctx);
      if (!c.match.some((m) => m(vars))) return;
    }
    let path = c.path;
    if (path === undefined) {
      const meta = ctx.pluginMetadata<{ path?: string }>(NAME)?.path;
      if (meta === undefined) {
        if (!c.reported) logger?.error('property "path" is not set in either the plugin conf or the metadata');
        c.reported = true;
        return;
      }
      path = resolve(meta);
    }
    files.write(path, logEntryJson(NAME, c.conf, c.log, ctx) + '\n');
  },
});
