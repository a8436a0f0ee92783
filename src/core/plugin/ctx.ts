/**
 * The one object a request carries through the pipeline, and the only way
 * plugins reach the core. Keep it narrow: what a plugin may read or change is
 * here and nowhere else (no Node objects: the data plane under it may change).
 * The data plane (src/core/http/request-context.ts) implements it; variables
 * are computed lazily on first read.
 */
import type { ConsumerConf, RouteConf, ServiceConf, UpstreamConf } from '../model.js';

/** Header names are lower-case everywhere. */
export interface HeaderEdits {
  get(name: string): string | undefined;
  set(name: string, value: string): void;
  add(name: string, value: string): void;
  remove(name: string): void;
  /**
   * Every header with its edits applied, as flat [name, value, ...] pairs (a
   * repeated header once per value; hop-by-hop headers left out): what a
   * plugin that keeps a whole response (proxy-cache) copies.
   */
  pairs(): string[];
  /** Every header with the edits applied, names lower-case, repeats as arrays (log plugins). */
  toObject(): Record<string, string | string[]>;
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
  /**
   * The body to send in place of the client's: set by `readBody` to what it
   * read (a stream is read once), replaced by a plugin that rewrites it; the
   * upstream's Content-Length follows it. Undefined: the client's body is streamed.
   */
  body: Buffer | undefined;
}

/** Why `readBody` has no body to give. */
export interface BodyError {
  readonly error: string;
  /** The body is larger than the limit asked for (a Content-Length that says so is refused unread). */
  readonly tooLarge: boolean;
}

export interface ResponseState {
  status: number;
  readonly headers: HeaderEdits;
}

/**
 * Names one piece of per-request data and the type of its value. Make one per
 * piece at module scope; two keys with the same name share the slot (that is
 * how a plugin hands a value to another part of the gateway under APISIX's
 * ctx names, e.g. kafka-proxy's SASL settings).
 */
export interface DataKey<T> {
  readonly name: string;
  /** Never set: carries `T` so `getData`/`setData` are typed by the key. */
  readonly type?: T;
}

export function dataKey<T>(name: string): DataKey<T> {
  return { name };
}

/**
 * An upstream written inside a plugin's conf (traffic-split's inline
 * upstreams), built by `CompileEnv.upstream` at config-change time with its
 * balancer, pools and health checks; a request sends its traffic there with
 * `ctx.useUpstream`. Opaque: only the core makes one.
 */
export interface PluginUpstream {
  readonly conf: Readonly<UpstreamConf>;
}

/**
 * Client-side figures of one request, as nginx's `$request_time` start,
 * `$request_length` and `$bytes_sent` measure them (see
 * src/core/http/measures.ts for how). Bytes count from the start of this
 * request on its connection, headers included, up to the moment of reading.
 */
export interface RequestMeasures {
  /** `performance.now()` when the request's head had been read. */
  readonly startedAt: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

export interface RequestContext {
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
  /**
   * A request header as the client sent it (name lower-case; repeats joined
   * with ", " as Node does). Plugin edits go to `upstreamRequest.headers` and
   * never show here.
   */
  requestHeader(name: string): string | undefined;
  /** Every request header as the client sent it (names lower-case; repeats joined as in `requestHeader`, Set-Cookie a list). */
  requestHeaders(): Readonly<Record<string, string | string[] | undefined>>;
  /**
   * The request's header lines as they came, flat [name, value, ...]: names
   * in the case sent, repeats not joined (Node's rawHeaders). Cheaper than
   * `requestHeaders()`, which Node builds on first read.
   */
  requestHeaderPairs(): readonly string[];
  /**
   * The client's whole body (APISIX's core.request.get_body), read once: later
   * calls get the same answer, and the upstream then gets the buffered copy
   * (`upstreamRequest.body`). An empty Buffer when the request has no body.
   * Only plugins that must see the body call it; every other request streams.
   */
  readBody(maxBytes: number): Promise<Buffer | BodyError>;

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
   * Sends this request to another upstream than the route's (APISIX's
   * `ctx.upstream_id` and `upstream.set`): an upstream id, or one a plugin
   * built at compile time. Call it in `rewrite` or `access`; `undefined`
   * goes back to the route's own upstream.
   */
  useUpstream(upstream: string | PluginUpstream | undefined): void;

  /**
   * Replaces the client's address for everything after this call (APISIX's
   * real-ip: `remote_addr`, `remote_port`, `ctx.remoteAddr`, routing-free
   * plugins and logs, X-Real-IP / X-Forwarded-For to the upstream). The
   * socket's own peer stays `realip_remote_addr`. The caller validates the
   * address; `port` keeps the socket's port when undefined.
   */
  setClientAddress(addr: string, port?: number): void;

  /**
   * Per-request data for plugins, typed by its key (APISIX keeps plugin
   * outputs on the request ctx; the same names are used here).
   */
  getData<T>(key: DataKey<T>): T | undefined;
  setData<T>(key: DataKey<T>, value: T): void;

  /**
   * Defined once `measureRequests()` (src/core/http/measures.ts) is on and
   * was on when this request started; read it in the log phase.
   */
  readonly measures: RequestMeasures | undefined;

  readonly upstreamRequest: UpstreamRequest;
  /** Filled before header_filter; header_filter plugins may change it. */
  readonly response: ResponseState;
  /**
   * `response.status` without building `response`: a proxied response's
   * headers are parsed only when something reads them, so a log plugin that
   * wants the status alone (metrics) reads this instead.
   */
  readonly responseStatus: number;
  /**
   * The response head as written to the client, flat [name, value, ...] in
   * the case sent (Portico's Server header included), once it is out;
   * undefined before, and for a response the gateway failed to build. What
   * APISIX's ngx.resp.get_headers() reads in the log phase: log entries use
   * it, at no cost, instead of parsing the upstream's head again.
   */
  readonly sentHeaders: readonly string[] | undefined;

  /**
   * Keeps the first `maxBytes` of the client's request body as it streams to
   * the upstream (APISIX's loggers call `ngx.req.read_body` in access for
   * this), readable as `requestBody` in the log phase. Call before the
   * upstream is contacted (rewrite, access, before_proxy); the largest limit
   * asked for wins. A request answered by the gateway itself (a plugin's exit)
   * never reads its body, so it has none.
   */
  keepRequestBody(maxBytes: number): void;
  /** What keepRequestBody kept; undefined when nobody asked or no body came. */
  readonly requestBody: Buffer | undefined;
  /**
   * Keeps the first `maxBytes` of the response body as the client gets it
   * (after every body_filter), readable as `responseBody` in the log phase.
   * Call before the response starts.
   */
  keepResponseBody(maxBytes: number): void;
  /** What keepResponseBody kept; undefined when nobody asked. */
  readonly responseBody: Buffer | undefined;

  /**
   * The plugin_metadata object of plugin `name` (APISIX's plugin.plugin_metadata), as the current config has it.
   * `M` is the shape the plugin's `metadata_schema` admits (the Admin API checked it on write); fields with a
   * schema default may be absent, so read them with the default as fallback.
   */
  pluginMetadata<M extends object = Readonly<Record<string, unknown>>>(name: string): Readonly<M> | undefined;
}
