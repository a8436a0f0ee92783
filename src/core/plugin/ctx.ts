/**
 * The one object a request carries through the pipeline, and the only way
 * plugins reach the core. Keep it narrow: what a plugin may read or change is
 * here and nowhere else. The data plane (src/core/request-context.ts)
 * implements it; variables are computed lazily on first read.
 */
import type { IncomingMessage } from 'node:http';
import type { ConsumerConf, RouteConf, ServiceConf, UpstreamConf } from '../model.js';

/** Header names are lower-case everywhere. */
export interface HeaderEdits {
  get(name: string): string | undefined;
  set(name: string, value: string): void;
  add(name: string, value: string): void;
  remove(name: string): void;
}

/**
 * APISIX-style variables (`ctx.var` in Lua): `uri`, `request_uri`, `host`,
 * `remote_addr`, `remote_port`, `server_port`, `request_method`, `scheme`,
 * `query_string`, `arg_<name>`, `http_<name>` (dashes as underscores),
 * `cookie_<name>`, `route_id`, `service_id`, `consumer_name`, `upstream_addr`...
 * Unknown names read as undefined.
 */
export interface Vars {
  get(name: string): string | undefined;
}

/** What the upstream will receive; rewrite-phase plugins change it. */
export interface UpstreamRequest {
  method: string;
  /** Path without query, already normalised; proxy-rewrite may replace it. */
  path: string;
  /** Query string without the leading '?', '' when none. */
  query: string;
  /** Host header to send when pass_host is `pass`; undefined keeps the client's. */
  host?: string;
  readonly headers: HeaderEdits;
}

export interface ResponseState {
  status: number;
  readonly headers: HeaderEdits;
}

export interface RequestContext {
  readonly req: IncomingMessage;
  /** Client's method, upper-case. */
  readonly method: string;
  /** Normalised path that routing matched (percent-decoded once, dot segments and `//` resolved). */
  readonly path: string;
  readonly query: string;
  readonly remoteAddr: string;
  readonly remotePort: number;
  /** Request host without port, lower-case. */
  readonly host: string;
  readonly var: Vars;

  /** The matched route after the plugin_config and service merge. */
  readonly route: RouteConf & { id: string };
  readonly service?: ServiceConf & { id: string };
  /** Resolved when the route's upstream is known (before the access phase ends). */
  upstream?: UpstreamConf & { id?: string };
  /**
   * The node the balancer picked for the current (or last) proxy attempt:
   * `key` is APISIX's `upstream_addr` (`host:port`), `host` its `balancer_ip`.
   * Undefined before the pick and when no upstream was contacted.
   */
  readonly target: Readonly<{ key: string; host: string; port: number }> | undefined;
  /** Set by an auth plugin in `rewrite`; its plugins are merged afterwards. */
  consumer?: ConsumerConf;

  /**
   * Free-form per-request data for plugins. APISIX keeps plugin outputs on the
   * request ctx; the same names are used here, e.g. `kafka-proxy` writes
   * `kafka_consumer_enable_sasl`, `kafka_consumer_sasl_username`,
   * `kafka_consumer_sasl_password`, `kafka_consumer_sasl_mechanism`.
   */
  readonly data: Record<string, unknown>;

  readonly upstreamRequest: UpstreamRequest;
  /** Filled before header_filter; header_filter plugins may change it. */
  readonly response: ResponseState;
  /**
   * `response.status` without building `response`: a proxied response's
   * headers are parsed only when something reads them, so a log plugin that
   * wants the status alone (metrics) reads this instead.
   */
  readonly responseStatus: number;

  /** The plugin_metadata object of plugin `name` (APISIX's plugin.plugin_metadata), as the current config has it. */
  pluginMetadata(name: string): Readonly<Record<string, unknown>> | undefined;
}
