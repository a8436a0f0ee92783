/**
 * http-logger (APISIX priority 410, apisix/plugins/http-logger.lua): APISIX's
 * log entry for each request, POSTed in batches to `uri` (a JSON array, or
 * one JSON object per line with `concat_method: new_line`; a batch of one is
 * a single object). Batching, retries and the backlog bound are the shared
 * batch processor's (lib/batch-manager.ts); the collector's status >= 400 is a
 * failure, retried per `max_retry_count`.
 */
import { Agent, request } from 'undici';
import { definePlugin, type PluginInitContext, type RequestContext } from '../core/plugin/index.js';
import { BatchManager, maxPendingEntriesSchema } from './lib/batch-manager.js';
import { batchSchemaProperties, type BatchOptions } from './lib/batch-processor.js';
import { checkLogConf, compileLogConf, logMetadataProperties, logSchemaProperties, type LogConf } from './lib/log-conf.js';
import { logEntry } from './lib/log-entry.js';
import { initLogger, loggerAccess, loggerBeforeProxy, type LoggerCompiled } from './lib/logger-plugin.js';

const NAME = 'http-logger';
const manager = new BatchManager<Record<string, unknown>>('http logger', NAME);

export interface HttpLoggerConf extends LogConf, BatchOptions {
  uri: string;
  auth_header?: string;
  timeout: number;
  concat_method: 'json' | 'new_line';
  ssl_verify: boolean;
}

interface Compiled extends LoggerCompiled<HttpLoggerConf> {
  readonly send: (entries: Array<Record<string, unknown>>, batchMaxSize: number) => Promise<void>;
}

const schema = {
  type: 'object',
  properties: {
    // APISIX's core.schema.uri_def.
    uri: { type: 'string', pattern: '^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?' },
    auth_header: { type: 'string' },
    timeout: { type: 'integer', minimum: 1, default: 3 },
    ...logSchemaProperties,
    concat_method: { type: 'string', default: 'json', enum: ['json', 'new_line'] },
    ssl_verify: { type: 'boolean', default: false },
    ...batchSchemaProperties('http logger'),
  },
  required: ['uri'],
};

const metadataSchema = {
  type: 'object',
  properties: { ...logMetadataProperties, max_pending_entries: maxPendingEntriesSchema },
};

// One connection pool per TLS verification choice, shared by every conf: batches reuse keep-alive connections.
const agents = new Map<boolean, Agent>();
function agentFor(verify: boolean): Agent {
  let a = agents.get(verify);
  if (a === undefined) {
    a = new Agent({ connect: { rejectUnauthorized: verify } });
    agents.set(verify, a);
  }
  return a;
}

function encode(conf: HttpLoggerConf, entries: Array<Record<string, unknown>>, batchMaxSize: number): string {
  if (batchMaxSize === 1) return JSON.stringify(entries[0]);
  if (conf.concat_method === 'json') return JSON.stringify(entries);
  return entries.map((e) => JSON.stringify(e)).join('\n');
}

function sender(conf: HttpLoggerConf): Compiled['send'] {
  const url = new URL(conf.uri);
  const hostPort = `host[${url.hostname}] port[${url.port || (url.protocol === 'https:' ? '443' : '80')}]`;
  const headers: Record<string, string> = { 'content-type': conf.concat_method === 'json' ? 'application/json' : 'text/plain' };
  if (conf.auth_header !== undefined) headers.authorization = conf.auth_header;
  const ms = conf.timeout * 1000;
  return async (entries, batchMaxSize) => {
    const body = encode(conf, entries, batchMaxSize);
    let res;
    try {
      res = await request(url, {
        method: 'POST',
        body,
        headers,
        dispatcher: agentFor(conf.ssl_verify),
        headersTimeout: ms,
        bodyTimeout: ms,
        signal: AbortSignal.timeout(ms),
      });
    } catch (err) {
      throw new Error(`error while sending data to ${hostPort} ${(err as Error).message}`);
    }
    const text = await res.body.text().catch(() => '');
    if (res.statusCode >= 400) throw new Error(`server returned status code[${res.statusCode}] ${hostPort} body[${text}]`);
  };
}

export default definePlugin({
  name: NAME,
  version: '0.1',
  priority: 410,
  schema,
  metadata_schema: metadataSchema,
  encrypt_fields: ['auth_header'],
  check: (conf: HttpLoggerConf) => checkLogConf(conf),
  compile(conf: HttpLoggerConf): Compiled {
    return { conf, log: compileLogConf(conf), send: sender(conf) };
  },
  init: (ctx: PluginInitContext) => initLogger(ctx, manager as BatchManager<unknown>),
  access: loggerAccess,
  before_proxy: loggerBeforeProxy,
  log(c: Compiled, ctx: RequestContext): void {
    const entry = logEntry(NAME, c.conf, c.log, ctx);
    entry.route_id ??= 'no-matched';
    manager.push(c, c.conf, ctx, entry, c.send);
  },
});
