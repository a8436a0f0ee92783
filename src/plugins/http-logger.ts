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
import { TextStore, type TextBatch } from './lib/text-store.js';
import { checkLogConf, compileLogConf, logMetadataProperties, logSchemaProperties, type LogConf } from './lib/log-conf.js';
import { writeLogRecord, type LogRecord } from './lib/log-json.js';
import { initLogger, loggerAccess, loggerBeforeProxy, type LoggerCompiled } from './lib/logger-plugin.js';

const NAME = 'http-logger';
// Entries are written as JSON bytes when pushed (lib/json-bytes.ts, without a string between) and wait as
// such (lib/text-store.ts): what survives a request until its batch is sent is a few hundred bytes outside the
// heap, not objects or a string for the garbage collector to copy and promote.
const manager = new BatchManager<LogRecord, TextBatch>('http logger', NAME, () => new TextStore(writeLogRecord));

export interface HttpLoggerConf extends LogConf, BatchOptions {
  uri: string;
  auth_header?: string;
  timeout: number;
  concat_method: 'json' | 'new_line';
  ssl_verify: boolean;
}

interface Compiled extends LoggerCompiled<HttpLoggerConf> {
  readonly send: (batch: TextBatch, batchMaxSize: number) => Promise<void>;
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

/** The batch's body: a batch of one (batch_max_size 1) as the object itself, else a JSON array or one entry a line. */
function encode(conf: HttpLoggerConf, batch: TextBatch, batchMaxSize: number): Buffer {
  if (batchMaxSize === 1 && batch.count === 1) return batch.entry(0);
  return conf.concat_method === 'json' ? batch.join(0x5b, 0x2c, 0x5d) : batch.join(undefined, 0x0a, undefined);
}

function sender(conf: HttpLoggerConf): Compiled['send'] {
  const url = new URL(conf.uri);
  const hostPort = `host[${url.hostname}] port[${url.port || (url.protocol === 'https:' ? '443' : '80')}]`;
  const headers: Record<string, string> = { 'content-type': conf.concat_method === 'json' ? 'application/json' : 'text/plain' };
  if (conf.auth_header !== undefined) headers.authorization = conf.auth_header;
  const ms = conf.timeout * 1000;
  return async (batch, batchMaxSize) => {
    const body = encode(conf, batch, batchMaxSize);
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
  init: (ctx: PluginInitContext) => initLogger(ctx, manager),
  access: loggerAccess,
  before_proxy: loggerBeforeProxy,
  log(c: Compiled, ctx: RequestContext): void {
    manager.push(c, c.conf, ctx, { plugin: NAME, conf: c.conf, compiled: c.log, ctx, routeIdDefault: 'no-matched' }, c.send);
  },
});
