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
// Entries wait as JSON text: what survives a request until its batch is sent is one flat string, not the
// entry's dozen small objects for the garbage collector to copy out of the young generation and promote.
const manager = new BatchManager<string>('http logger', NAME);

export interface HttpLoggerConf extends LogConf, BatchOptions {
  uri: string;
  auth_header?: string;
  timeout: number;
  concat_method: 'json' | 'new_line';
  ssl_verify: boolean;
}

interface Compiled extends LoggerCompiled<HttpLoggerConf> {
  readonly send: (entries: string[], batchMaxSize: number) => Promise<void>;
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

/**
 * The batch's body, each entry written once into one Buffer: joining the
 * entries into one string cost about four times as much (V8 flattens the
 * joined string, then Node copies it again to bytes), and Buffer.from() per
 * entry as much as the JSON encoding itself.
 */
function encode(conf: HttpLoggerConf, entries: string[], batchMaxSize: number): Buffer {
  if (batchMaxSize === 1) return Buffer.from(entries[0]!);
  const json = conf.concat_method === 'json';
  let chars = 0;
  for (const e of entries) chars += e.length + 1;
  // Sized for one byte a character (log entries are mostly ASCII); wider UTF-8 is sized exactly on a second pass.
  return fill(entries, json, chars + 2 + SLACK) ?? fill(entries, json, utf8Size(entries) + 2 + SLACK)!;
}

/** A full entry never ends within SLACK bytes of the end: one that does may have been cut short. */
const SLACK = 8;

function utf8Size(entries: string[]): number {
  let n = 0;
  for (const e of entries) n += Buffer.byteLength(e) + 1;
  return n;
}

/** undefined when an entry may have been cut short. */
function fill(entries: string[], json: boolean, size: number): Buffer | undefined {
  const out = Buffer.allocUnsafe(size);
  const limit = size - SLACK;
  let at = 0;
  if (json) out[at++] = 0x5b; // [
  for (let i = 0; i < entries.length; i++) {
    if (i > 0) out[at++] = json ? 0x2c : 0x0a; // , or \n
    at += out.write(entries[i]!, at, 'utf8');
    if (at > limit) return undefined;
  }
  if (json) out[at++] = 0x5d; // ]
  return out.subarray(0, at);
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
    manager.push(c, c.conf, ctx, JSON.stringify(entry), c.send);
  },
});
