/**
 * The plugin contract. One file per plugin in src/plugins/, default-exporting a
 * PluginDefinition; the registry discovers them, so adding a plugin never
 * touches the core. Phases run in descending `priority` (APISIX's numbers).
 */
import type { RequestContext } from './ctx.js';
import type { ConsumerConf } from './model.js';

export type JsonSchema = Record<string, unknown>;

export type PhaseName = 'rewrite' | 'access' | 'before_proxy' | 'header_filter' | 'body_filter' | 'log';
export const PHASES: readonly PhaseName[] = ['rewrite', 'access', 'before_proxy', 'header_filter', 'body_filter', 'log'];

/** Returned from rewrite/access/before_proxy to end the request (APISIX's `return code, body`). */
export interface PluginExit {
  status: number;
  /** An object is sent as JSON followed by "\n"; a string or Buffer as is. */
  body?: unknown;
  headers?: Record<string, string>;
}

export type MaybePromise<T> = T | Promise<T>;

/** Which schema a conf is checked against (APISIX's schema types). */
export type SchemaType = 'route' | 'consumer' | 'metadata';

export interface PluginDefinition<Conf = Record<string, unknown>> {
  name: string;
  priority: number;
  version?: string;
  /** `auth` plugins identify consumers. */
  type?: 'auth';
  schema: JsonSchema;
  consumer_schema?: JsonSchema;
  metadata_schema?: JsonSchema;
  /** Dotted paths stored encrypted when data encryption is on (APISIX `encrypt_fields`). */
  encrypt_fields?: string[];
  /** Checks beyond the JSON schema; return an error message or undefined. Runs at admin-write time. */
  check?(conf: Conf, type: SchemaType): string | undefined;

  /**
   * Builds the per-conf runtime state once when config changes (compiled
   * regexes, counters); the result is what phase functions receive as `conf`.
   * Without it, phases receive the validated conf (defaults filled in).
   */
  compile?(conf: Conf): Conf;

  /**
   * Auth plugins: receives every consumer whenever the consumer set changes
   * (and once at start, `[]` when there are none), so the plugin builds its
   * credential lookup table at config-change time, never per request
   * (APISIX's `consumer.plugin(name)` cache). Each consumer's `plugins` confs
   * are already validated against `consumer_schema` with defaults filled and
   * encrypted fields decrypted. The plugin replaces its table on each call;
   * like APISIX's per-worker cache, the table is per process.
   */
  consumers?(consumers: readonly ConsumerConf[]): void;

  rewrite?(conf: Conf, ctx: RequestContext): MaybePromise<PluginExit | void>;
  access?(conf: Conf, ctx: RequestContext): MaybePromise<PluginExit | void>;
  before_proxy?(conf: Conf, ctx: RequestContext): MaybePromise<PluginExit | void>;
  /** Runs after the upstream's (or an exit's) status and headers are known; edit `ctx.response`. */
  header_filter?(conf: Conf, ctx: RequestContext): void;
  /**
   * Sees the response body chunk by chunk; return a Buffer to replace the
   * chunk (an empty Buffer drops it). `eof` is true on the last call, whose
   * chunk may be empty.
   */
  body_filter?(conf: Conf, ctx: RequestContext, chunk: Buffer, eof: boolean): Buffer | void;
  log?(conf: Conf, ctx: RequestContext): void;
}
