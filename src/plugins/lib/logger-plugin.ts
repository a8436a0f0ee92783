/**
 * The phase functions and start-up every batch logger shares: keep the bodies
 * in access, mark the upstream attempt in before_proxy, and at start-up turn
 * on request measures (sizes, latency) and hook the flush on shutdown.
 */
import { type PluginCleanup, type PluginInitContext, type RequestContext } from '../../core/plugin/index.js';
import type { BatchManager } from './batch-manager.js';
import type { CompiledLog, LogConf } from './log-conf.js';
import { keepBodies, markUpstream, setServerVersion } from './log-entry.js';

/** How long shutdown waits for the loggers' last batches. */
export const FLUSH_DEADLINE_MS = 3000;

/** What a logger's compile() returns: the validated conf and its compiled log parts. */
export interface LoggerCompiled<C extends LogConf> {
  readonly conf: C;
  readonly log: CompiledLog;
}

export function loggerAccess<C extends LogConf>(c: LoggerCompiled<C>, ctx: RequestContext): void {
  keepBodies(c.conf, c.log, ctx);
}

export function loggerBeforeProxy(_c: unknown, ctx: RequestContext): void {
  markUpstream(ctx);
}

/** init(): the manager told where to report; the cleanup flushes it. */
export function initLogger(ctx: PluginInitContext, manager?: Pick<BatchManager<unknown>, 'attach'>): PluginCleanup {
  setServerVersion(ctx.version);
  const flush = manager?.attach(ctx.logger);
  return async () => {
    await flush?.(FLUSH_DEADLINE_MS);
  };
}
