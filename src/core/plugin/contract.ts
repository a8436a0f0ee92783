/**
 * The plugin contract. One file per plugin in src/plugins/ (or a folder whose
 * `index.ts` is the plugin), default-exporting `definePlugin({...})`; the
 * registry discovers them, so adding a plugin never touches the core. Phases
 * run in descending `priority` (APISIX's numbers).
 */
import type { Logger } from 'pino';
import type { PluginUpstream, RequestContext } from './ctx.js';
import type { ConsumerConf, UpstreamConf } from '../model.js';
import type { ProxyCacheConf } from '../config/types.js';
import type { NodeShared } from '../process/shared-state.js';

import type { JsonSchema, SchemaType } from '../../schema/types.js';

export type { JsonSchema, SchemaType };

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

/** What a plugin's init() is told about the process it starts in: what plugins need, not the whole config. */
export interface PluginInitContext {
  /** plugin_attr.<name> from config.yaml; {} when absent. */
  readonly attr: Readonly<Record<string, unknown>>;
  readonly logger: Logger;
  /** Portico's version (APISIX's `core.version.VERSION`), e.g. for metrics labels. */
  readonly version: string;
  /**
   * `main`: the process that started the gateway (Admin API, config store).
   * `worker`: a data-plane cluster worker.
   */
  readonly process: 'main' | 'worker';
  /**
   * Requests are served by forked workers, not by `main` (always, except with
   * worker_processes 1 served in-process): what `main` reports, such as
   * metrics, has to be gathered from them.
   */
  readonly dataPlaneInWorkers: boolean;
  /**
   * How many processes serve this node's requests (1 when served in-process).
   * Above 1, state that APISIX keeps per node in shared memory (limit-count's
   * counters) has to be shared through `main`.
   */
  readonly workers: number;
  /**
   * The ports of apisix.ssl.listen, in order, as configured (0: an ephemeral
   * port); empty when apisix.ssl is off. redirect's http_to_https sends
   * clients to the first one.
   */
  readonly httpsPorts: readonly number[];
  /** Per-node state shared by this node's processes (APISIX's shared dicts), in this plugin's namespace. */
  readonly shared: NodeShared;
  /** `apisix.proxy_cache` from config.yaml (APISIX's plugins read it through core.config.local_conf()). */
  readonly proxyCache: Readonly<ProxyCacheConf> | undefined;
  /**
   * In `main`, when the config store is etcd: whether etcd answers a read now,
   * resolved within two seconds (false when it does not). Undefined in workers
   * and with the embedded or standalone store. prometheus's apisix_etcd_reachable.
   */
  readonly configStoreReachable?: () => Promise<boolean>;
}

/** What a plugin's compile() may ask of the core while it builds its runtime state. */
export interface CompileEnv {
  /**
   * Builds an upstream written in the conf (already valid against the
   * upstream schema): its runtime lives as long as a served config holds it,
   * and an identical upstream in the next config keeps its pools and health.
   */
  upstream(conf: UpstreamConf): PluginUpstream;
}

/** Undoes what init() did (APISIX's `destroy`); called when the gateway closes. */
export type PluginCleanup = () => MaybePromise<void>;

/**
 * `Conf` is the conf as validated (schema defaults filled in): what `check`
 * and `compile` receive. `Compiled` is what `compile` returns and every phase
 * function receives, built once per config change; without `compile` the
 * phases get the validated conf itself, so leave `Compiled` at `Conf` then.
 */
export interface PluginDefinition<Conf = Record<string, unknown>, Compiled = Conf> {
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
   * Throwing skips the object that holds the conf, as an invalid conf does.
   */
  compile?(conf: Conf, env: CompileEnv): Compiled;

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

  rewrite?(conf: Compiled, ctx: RequestContext): MaybePromise<PluginExit | void>;
  access?(conf: Compiled, ctx: RequestContext): MaybePromise<PluginExit | void>;
  before_proxy?(conf: Compiled, ctx: RequestContext): MaybePromise<PluginExit | void>;
  /** Runs after the upstream's (or an exit's) status and headers are known; edit `ctx.response`. */
  header_filter?(conf: Compiled, ctx: RequestContext): void;
  /**
   * Sees the response body chunk by chunk; return a Buffer to replace the
   * chunk (an empty Buffer drops it). `eof` is true on the last call, whose
   * chunk may be empty.
   */
  body_filter?(conf: Compiled, ctx: RequestContext, chunk: Buffer, eof: boolean): Buffer | void;
  log?(conf: Compiled, ctx: RequestContext): void;

  /**
   * Once per process, before the data plane serves, when the plugin is in the
   * enabled list (APISIX's `init`): process-wide state such as metrics or an
   * extra listener. Throwing stops start-up with that message.
   */
  init?(ctx: PluginInitContext): MaybePromise<PluginCleanup | void>;
}

/**
 * A plugin as the core holds it, its conf types unknown: the core only hands
 * each phase what the same plugin's `compile` returned.
 */
export type AnyPlugin = PluginDefinition<never, unknown>;

/**
 * Declares a plugin; the identity, there to infer `Conf` (from `check` or
 * `compile`) and `Compiled` (from what `compile` returns) so every phase
 * function is checked against them.
 */
export function definePlugin<Conf = Record<string, unknown>, Compiled = Conf>(def: PluginDefinition<Conf, Compiled>): PluginDefinition<Conf, Compiled> {
  return def;
}
