/**
 * Forwards one request to the picked node with undici's low-level
 * Pool.dispatch: raw headers in and out, the client's body streamed up and the
 * upstream's body streamed down, each side paused while the other is full (a
 * 1 GiB upload never sits in memory). The handler is one object per request
 * with plain methods, so the hot path allocates no closures.
 *
 * Failures before any response byte reached the client become APISIX-style
 * JSON errors (502 connect/reset/bad response, 504 timeout); after that the
 * client connection is cut, which is the only honest signal left. Retries go
 * to other nodes, only when nothing of the request was sent (connect failed or
 * timed out), or when an idempotent, bodiless request was reset before a
 * response started; never once the body is on the wire.
 *
 * Timeouts (`timeout` of the route, else of the upstream; nginx's proxy_*_timeout):
 * - connect: enforced by the node's pool. A route whose connect differs from
 *   its upstream's dispatches through a pool built with its own value (shared
 *   by all such routes), so no timer runs per request. undici times connects
 *   on its coarse clock (~0.5 s ticks): sub-second values round up.
 * - send: the longest the upstream may refuse request body data. undici pauses
 *   the client's body while the upstream socket is full; a timer runs only
 *   during such a stall. Expiry is a 504; the body is partly sent, so no retry.
 * - read: undici's headers and body timeouts (headers time includes any
 *   stall while the body is sent, as undici counts it).
 */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ERRORS, sendError, type GatewayError } from '../errors.js';
import { connectionTokens, Headers, isHopByHop, latin1 } from '../http/headers.js';
import type { TimeoutConf } from '../model.js';
import { encodePath } from '../http/normalize-path.js';
import { bodyFilters, runBodyFilter, runHeaderFilter, type ChainEntry } from '../plugin/pipeline.js';
import type { RequestCtx } from '../http/request-context.js';
import type { UpstreamOutcome, UpstreamRuntime, UpstreamTarget } from '../upstream/types.js';
import type { Logger } from 'pino';

/** Set by the client's values here, never forwarded as sent (checklist 18). */
const OWN = ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip', 'expect'];
/**
 * Plus every underscored spelling of those names (`x_forwarded_for`, `x-real_ip`, ...), dropped.
 * Other headers with underscores pass unchanged, never renamed: APISIX ships
 * `underscores_in_headers on`, so it forwards them too, and `http_*` variables
 * read only the hyphenated name (vars.ts). But an upstream that folds `_` and
 * `-` together (CGI, WSGI, PHP: both become HTTP_X_FORWARDED_FOR) would let a
 * client's X_Forwarded_For pose as ours, so those spellings never leave here.
 * Listed up front, so the check is the same one set lookup as before.
 */
const REPLACED = new Set(OWN.flatMap(underscoreSpellings));

/** `a-b-c` → a-b-c, a_b-c, a-b_c, a_b_c. */
function underscoreSpellings(name: string): string[] {
  let out = [''];
  for (const ch of name) out = ch === '-' ? out.flatMap((p) => [p + '-', p + '_']) : out.map((p) => p + ch);
  return out;
}
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const DEFAULT_TIMEOUT_S = 60;
/** Error code of a request body the upstream stopped accepting for longer than `timeout.send`. */
const SEND_TIMEOUT = 'PORTICO_SEND_TIMEOUT';
const kExchange = Symbol('portico.exchange');
type BodyStream = IncomingMessage & { [kExchange]?: ProxyExchange };

/**
 * undici pauses the client's body stream when the upstream socket's buffer is
 * full and resumes it on drain, so 'pause' and 'resume' on the body are
 * exactly "the upstream stopped / started accepting data". Shared listeners
 * (`this` is the body) rather than closures per request.
 */
function onBodyPause(this: BodyStream): void {
  this[kExchange]?.bodyBlocked();
}
function onBodyResume(this: BodyStream): void {
  this[kExchange]?.bodyFlowing();
}
function onSendTimer(exchange: ProxyExchange): void {
  exchange.checkSendTimeout();
}

export interface ProxyEnv {
  readonly logger: Logger;
  readonly serverHeader: string;
}

type Failure = NonNullable<UpstreamOutcome['failure']>;

function classify(err: Error & { code?: string }): { failure: Failure; error: GatewayError } {
  switch (err.code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case SEND_TIMEOUT:
    case 'ETIMEDOUT':
      return { failure: 'timeout', error: ERRORS.gatewayTimeout };
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return { failure: 'connect', error: ERRORS.badGateway };
    default:
      return { failure: 'reset', error: ERRORS.badGateway };
  }
}

/**
 * One proxied request across its attempts. Implements undici's dispatch
 * handler (the legacy raw-header interface, which undici calls directly
 * without wrapping).
 */
export class ProxyExchange implements Dispatcher.DispatchHandler {
  private target: UpstreamTarget;
  private tried: Set<string> | undefined;
  private retriesLeft: number;
  private readonly retryDeadline: number;
  private readonly options: Dispatcher.DispatchOptions;
  private readonly timeout: TimeoutConf | undefined;
  private abortFn: ((err?: Error) => void) | undefined;
  private connected = false;
  private responded = false;
  private finished = false;
  private clientGone = false;
  private sentAt = 0;
  private resumeFn: (() => void) | undefined;
  private filters: readonly ChainEntry[] = [];
  /**
   * Response body bytes still to come, from the upstream's Content-Length (-1:
   * unknown, or the body passes through filters). The chunk that completes it
   * goes out with res.end(): one write of the rest of the response, where
   * write() then end() would also cork the socket and queue a tick to uncork.
   */
  bodyLeft = -1;
  /** A route-level connect timeout that differs from the pool's, in ms; 0 when the pool's applies. */
  private readonly connectMs: number;
  /** timeout.send in ms, for requests with a body; 0 without one. */
  private readonly sendMs: number;
  /** When the upstream stopped accepting body data (0: it is accepting). */
  private blockedAt = 0;
  private sendTimer: NodeJS.Timeout | undefined;
  private sendTimedOut = false;

  constructor(
    private readonly ctx: RequestCtx,
    private readonly runtime: UpstreamRuntime,
    first: UpstreamTarget,
    private readonly env: ProxyEnv,
    /** The body when it is not the request stream itself (an upgrade request served as a plain one). */
    bodyStream?: Readable,
  ) {
    this.target = first;
    const conf = runtime.conf;
    this.retriesLeft = runtime.retries;
    this.retryDeadline = conf.retry_timeout ? performance.now() + conf.retry_timeout * 1000 : Infinity;
    this.timeout = ctx.compiled?.timeout ?? conf.timeout;
    const read = (this.timeout?.read ?? DEFAULT_TIMEOUT_S) * 1000;
    const routeConnect = ctx.compiled?.timeout?.connect;
    // The pool enforces the upstream's connect timeout; a route that differs uses a pool built with its own.
    this.connectMs = routeConnect !== undefined && routeConnect * 1000 !== runtime.connectTimeoutMs ? routeConnect * 1000 : 0;
    const body = ctx.hasBody ? ((bodyStream ?? ctx.req) as BodyStream) : null;
    this.sendMs = 0;
    if (body !== null) {
      this.sendMs = (this.timeout?.send ?? DEFAULT_TIMEOUT_S) * 1000;
      body[kExchange] = this;
      body.on('pause', onBodyPause);
      body.on('resume', onBodyResume);
    }
    // No plugin touched the upstream request (the common case): forward what the client sent, without building edit state.
    const up = ctx.peekUpstreamRequest();
    const method = up === undefined ? ctx.method : up.method;
    const path = up === undefined ? ctx.path : up.path;
    const query = up === undefined ? ctx.query : up.query;
    this.options = {
      method: method as Dispatcher.HttpMethod,
      path: query === '' ? encodePath(path) : encodePath(path) + '?' + query,
      headers: up === undefined ? clientUpstreamHeaders(ctx, runtime, first) : upstreamHeaders(ctx, runtime, first),
      body,
      headersTimeout: read,
      bodyTimeout: read,
    };
  }

  start(): void {
    this.dispatch();
  }

  /** The client went away: stop talking to the upstream. */
  clientClosed(): void {
    if (this.finished) return;
    this.clientGone = true;
    this.abortFn?.(new Error('client closed the connection'));
  }

  private dispatch(): void {
    this.connected = false;
    this.abortFn = undefined;
    if (this.runtime.observed) this.sentAt = performance.now();
    this.ctx.target = this.target;
    const target = this.target;
    try {
      const pool = this.connectMs === 0 ? target.pool : this.runtime.poolWithConnectTimeout(target, this.connectMs);
      pool.dispatch(this.options, this);
    } catch (err) {
      // A closed pool (config swapped long ago) or invalid options.
      this.onError(err as Error);
    }
  }

  // ---- timeout.send ------------------------------------------------------

  /** The upstream socket is full: the send timeout runs until it drains. */
  bodyBlocked(): void {
    if (this.finished) return;
    this.blockedAt = performance.now();
    // One timer per stall at most; it re-arms itself for the remainder when the body moved meanwhile.
    this.sendTimer ??= setTimeout(onSendTimer, this.sendMs, this);
  }

  bodyFlowing(): void {
    this.blockedAt = 0;
  }

  checkSendTimeout(): void {
    this.sendTimer = undefined;
    if (this.finished || this.blockedAt === 0) return;
    const left = this.blockedAt + this.sendMs - performance.now();
    if (left >= 1) {
      this.sendTimer = setTimeout(onSendTimer, left, this);
      return;
    }
    this.sendTimedOut = true;
    const err = new Error(`upstream accepted no request body data for ${this.sendMs} ms`) as Error & { code: string };
    err.code = SEND_TIMEOUT;
    this.abortFn?.(err);
  }

  private stopSendTimer(): void {
    if (this.sendTimer !== undefined) {
      clearTimeout(this.sendTimer);
      this.sendTimer = undefined;
    }
    this.blockedAt = 0;
  }

  // ---- undici handler ----------------------------------------------------

  /** The whole body is on the wire: from here the read timeout applies. */
  onRequestSent(): void {
    this.stopSendTimer();
  }

  onConnect(abort: (err?: Error) => void): void {
    if (this.clientGone) {
      abort(new Error('client closed the connection'));
      return;
    }
    this.connected = true;
    this.abortFn = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (statusCode < 200) return true; // 1xx interim responses are not relayed
    const ctx = this.ctx;
    this.responded = true;
    this.resumeFn = resume;
    const runtime = this.runtime;
    if (runtime.observed) runtime.report(this.target, { status: statusCode, latencyMs: performance.now() - this.sentAt });
    const chain = ctx.chain!;
    const global = ctx.snapshot.globalChain;
    let status = statusCode;
    let out: string[];
    if (chain.header_filter.length === 0 && global.header_filter.length === 0 && chain.body_filter.length === 0 && global.body_filter.length === 0) {
      // No plugin looks at the response: relay the raw pairs; ctx.response is parsed only if a log plugin reads it.
      ctx.setUpstreamResponse(statusCode, rawHeaders);
      out = relayedHeaders(rawHeaders, this);
    } else {
      const headers = new Headers(rawHeaders);
      ctx.setResponse(statusCode, headers);
      try {
        runHeaderFilter(global, chain, ctx);
      } catch (err) {
        this.env.logger.error({ err, route: ctx.route.id }, 'plugin failed in header_filter');
        this.fail(ERRORS.internal);
        this.abortFn?.(err as Error);
        return false;
      }
      this.filters = bodyFilters(global, chain);
      const response = ctx.response;
      status = response.status;
      out = response.headers.flatten([], headers.connectionTokens(), this.filters.length > 0 ? SERVER_AND_LENGTH : SERVER_ONLY);
    }
    out.push('server', this.env.serverHeader);
    try {
      ctx.res.writeHead(status, out);
    } catch (err) {
      // Invalid header bytes from the upstream: a bad response, not our crash.
      this.env.logger.warn({ err, upstream: this.target.key }, 'upstream sent an unusable response head');
      this.fail(ERRORS.badGateway);
      this.abortFn?.(err as Error);
      return false;
    }
    return true;
  }

  onData(chunk: Buffer): boolean {
    const res = this.ctx.res;
    if (this.filters.length > 0) {
      try {
        chunk = runBodyFilter(this.filters, this.ctx, chunk, false);
      } catch (err) {
        this.env.logger.error({ err, route: this.ctx.route.id }, 'plugin failed in body_filter');
        res.destroy();
        return false;
      }
      if (chunk.length === 0) return true;
    }
    const left = this.bodyLeft;
    if (left >= 0) {
      if (chunk.length >= left) {
        this.bodyLeft = -1;
        res.end(chunk);
        return true;
      }
      this.bodyLeft = left - chunk.length;
    }
    if (res.write(chunk)) return true;
    // The client is slow: undici pauses the upstream until the response drains (a listener only now, not per request).
    res.once('drain', this.resumeFn!);
    return false;
  }

  onComplete(): void {
    this.finished = true;
    if (this.sendMs !== 0) this.stopSendTimer();
    this.runtime.release(this.target);
    const res = this.ctx.res;
    if (this.filters.length > 0) {
      let tail: Buffer;
      try {
        tail = runBodyFilter(this.filters, this.ctx, EMPTY, true);
      } catch (err) {
        this.env.logger.error({ err, route: this.ctx.route.id }, 'plugin failed in body_filter');
        res.destroy();
        return;
      }
      res.end(tail.length > 0 ? tail : undefined);
      return;
    }
    res.end();
  }

  onError(err: Error & { code?: string }): void {
    if (this.finished) return;
    if (this.sendMs !== 0) this.stopSendTimer();
    const target = this.target;
    // A client that vanished mid-upload is not the upstream's failure: no health report, no retry.
    const req = this.ctx.req;
    if (!this.sendTimedOut && (this.clientGone || (req.destroyed && !req.complete))) {
      this.finished = true;
      this.runtime.release(target);
      return;
    }
    const { failure, error } = classify(err);
    if (!this.responded) this.runtime.report(target, { failure, latencyMs: performance.now() - this.sentAt });
    this.runtime.release(target);
    if (!this.responded && this.retriesLeft > 0 && performance.now() < this.retryDeadline && this.mayRetry(failure)) {
      this.retriesLeft--;
      (this.tried ??= new Set()).add(target.key);
      const next = this.runtime.pick(this.ctx, this.tried);
      if (next) {
        this.env.logger.debug({ upstream: target.key, next: next.key, err: err.message }, 'proxy: retrying on another node');
        this.target = next;
        const headers = this.options.headers as string[];
        const hostAt = headers.indexOf('host');
        if (hostAt >= 0 && (this.runtime.conf.pass_host ?? 'pass') === 'node') headers[hostAt + 1] = upstreamHost(this.ctx, this.runtime, next);
        this.dispatch();
        return;
      }
    }
    this.finished = true;
    this.env.logger.warn({ upstream: target.key, route: this.ctx.route.id, code: err.code, err: err.message }, 'proxy: upstream failed');
    this.fail(error);
  }

  /** Nothing of the request was written, or an idempotent bodiless request died before any answer. */
  private mayRetry(failure: Failure): boolean {
    if (!this.connected) return true;
    if (failure !== 'reset') return false;
    return this.options.body === null && IDEMPOTENT.has(this.ctx.upstreamRequest.method);
  }

  private fail(error: GatewayError): void {
    this.finished = true;
    const ctx = this.ctx;
    const res = ctx.res;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    ctx.setResponse(error.status, new Headers({}));
    // The rest of the client's body was never read: this connection cannot carry another request.
    if (this.sendTimedOut) res.shouldKeepAlive = false;
    sendError(res, error, { server: this.env.serverHeader });
  }
}

/**
 * X-Forwarded-For: a trusted peer's chain (apisix.trusted_addresses) is kept
 * and the peer appended, as nginx's $proxy_add_x_forwarded_for; from anyone
 * else the header is the socket address alone, so a client cannot plant
 * addresses an upstream might believe (checklist 18).
 */
function forwardedFor(ctx: RequestCtx, prior: string | undefined, remote: string): string {
  if (prior === undefined) return remote;
  const info = ctx.socketInfo;
  const trusted = (info.trusted ??= ctx.snapshot.trustedPeer(remote));
  if (!trusted) return remote;
  return `${prior}, ${remote}`;
}

export function upstreamHeaders(ctx: RequestCtx, runtime: UpstreamRuntime, target: UpstreamTarget): string[] {
  const up = ctx.upstreamRequest;
  const edits = up.headers;
  const out: string[] = [];
  const drop = connectionTokens(ctx.connectionHeader);
  edits.flatten(out, drop, REPLACED);
  // Node parsed and de-chunked the body; undici re-frames it, so keep only a Content-Length that is true.
  if (ctx.chunked) {
    for (let i = 0; i < out.length; i += 2) if (out[i] === 'content-length') out.splice(i, 2), (i -= 2);
  }
  out.push('host', upstreamHost(ctx, runtime, target));
  const xff = edits.edited('x-forwarded-for') ? edits.get('x-forwarded-for') : undefined;
  const info = ctx.socketInfo;
  if (xff !== undefined) out.push('x-forwarded-for', xff);
  else out.push('x-forwarded-for', forwardedFor(ctx, ctx.forwardedForHeader, ctx.remoteAddr));
  pushOwn(ctx, out, 'x-forwarded-proto', info.proto);
  pushOwn(ctx, out, 'x-forwarded-host', ctx.host || (ctx.hostHeader ?? ''));
  pushOwn(ctx, out, 'x-forwarded-port', info.localPort);
  pushOwn(ctx, out, 'x-real-ip', ctx.remoteAddr);
  return out;
}

/**
 * upstreamHeaders() for a request no plugin edited: the client's header lines
 * as sent (names in their case, repeated lines kept, as nginx forwards them)
 * minus hop-by-hop and replaced ones, then ours. Walks rawHeaders, an array,
 * rather than for-in over the parsed headers object, whose keyed loads were
 * megamorphic in the profile; only names that could be dropped are lower-cased.
 */
function clientUpstreamHeaders(ctx: RequestCtx, runtime: UpstreamRuntime, target: UpstreamTarget): string[] {
  const raw = ctx.req.rawHeaders;
  const out: string[] = [];
  const conn = ctx.connectionHeader;
  const drop = conn === undefined ? undefined : connectionTokens(conn);
  // Node parsed and de-chunked the body; undici re-frames it, so keep only a Content-Length that is true.
  const chunked = ctx.chunked;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (drop !== undefined || mayBeDropped(name)) {
      const lower = name.toLowerCase();
      if (REPLACED.has(lower) || isHopByHop(lower) || (drop !== undefined && drop.has(lower)) || (chunked && lower === 'content-length')) continue;
    }
    out.push(name, raw[i + 1]!);
  }
  const info = ctx.socketInfo;
  const remote = info.remoteAddr;
  out.push(
    'host',
    upstreamHost(ctx, runtime, target),
    'x-forwarded-for',
    forwardedFor(ctx, ctx.forwardedForHeader, remote),
    'x-forwarded-proto',
    info.proto,
    'x-forwarded-host',
    ctx.host || (ctx.hostHeader ?? ''),
    'x-forwarded-port',
    info.localPort,
    'x-real-ip',
    remote,
  );
  return out;
}

/**
 * Could `name` (any case) be one clientUpstreamHeaders drops? True for every
 * name in REPLACED, every hop-by-hop name, proxy-* and content-length, decided
 * on length and first letter, so common headers skip the lower-casing.
 */
function mayBeDropped(name: string): boolean {
  const first = name.charCodeAt(0) | 0x20;
  if (first === 0x70 /* p */) return true;
  switch (name.length) {
    case 2: // te
      return first === 0x74;
    case 4: // host
      return first === 0x68;
    case 6: // expect
      return first === 0x65;
    case 7: // trailer, upgrade
      return first === 0x74 || first === 0x75;
    case 9: // x-real-ip
    case 15: // x-forwarded-for
    case 16: // x-forwarded-host, x-forwarded-port
      return first === 0x78;
    case 10: // connection, keep-alive
      return first === 0x63 || first === 0x6b;
    case 14: // content-length
      return first === 0x63;
    case 17: // x-forwarded-proto, transfer-encoding
      return first === 0x78 || first === 0x74;
    default:
      return false;
  }
}

/**
 * The upstream's response header pairs as strings for writeHead, minus
 * hop-by-hop headers, names its Connection header lists, and Server (ours
 * replaces it). Names keep the upstream's case, as nginx relays them.
 * `length.bodyLeft` gets the Content-Length (-1 without one).
 */
export function relayedHeaders(raw: Buffer[], length: { bodyLeft: number }): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  length.bodyLeft = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i]!);
    const value = latin1(raw[i + 1]!);
    // Only names of these lengths (or starting with p, for proxy-*) can be dropped: skip lower-casing the rest.
    const n = name.length;
    if (n === 2 || n === 6 || n === 7 || n === 10 || n === 17 || (name.charCodeAt(0) | 0x20) === 0x70) {
      const lower = name.toLowerCase();
      if (lower === 'connection') {
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      }
      if (lower === 'server' || isHopByHop(lower)) continue;
    } else if (n === 14 && (name.charCodeAt(0) | 0x20) === 0x63 && name.toLowerCase() === 'content-length') {
      // undici's parser already refused a malformed or conflicting one.
      length.bodyLeft = Number(value);
    }
    out.push(name, value);
  }
  if (connection === undefined) return out;
  const drop = connectionTokens(connection);
  if (drop === undefined) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) if (!drop.has(out[i]!.toLowerCase())) kept.push(out[i]!, out[i + 1]!);
  return kept;
}

/** Our value, unless a plugin set its own. */
function pushOwn(ctx: RequestCtx, out: string[], name: string, value: string): void {
  const edits = ctx.upstreamRequest.headers;
  if (edits.edited(name)) {
    const v = edits.get(name);
    if (v !== undefined) out.push(name, v);
    return;
  }
  out.push(name, value);
}

/** pass_host: `pass` keeps the client's Host (or a plugin's), `node` sends the node's address, `rewrite` sends upstream_host. */
export function upstreamHost(ctx: RequestCtx, runtime: UpstreamRuntime, target: UpstreamTarget): string {
  const conf = runtime.conf;
  const mode = conf.pass_host ?? 'pass';
  if (mode === 'rewrite' && conf.upstream_host) return conf.upstream_host;
  if (mode === 'node') {
    const https = conf.scheme === 'https' || conf.scheme === 'grpcs';
    return target.port === (https ? 443 : 80) ? target.host : target.key;
  }
  const up = ctx.peekUpstreamRequest();
  if (up !== undefined) {
    if (up.host !== undefined) return up.host;
    if (up.headers.edited('host')) return up.headers.get('host') ?? target.key;
  }
  return ctx.hostHeader ?? target.key;
}

const EMPTY = Buffer.alloc(0);
const SERVER_ONLY: ReadonlySet<string> = new Set(['server']);
/** With body_filter plugins the body may change length, so the upstream's Content-Length cannot stand. */
const SERVER_AND_LENGTH: ReadonlySet<string> = new Set(['server', 'content-length']);

export function proxyRequest(ctx: RequestCtx, runtime: UpstreamRuntime, target: UpstreamTarget, env: ProxyEnv): ProxyExchange {
  const exchange = new ProxyExchange(ctx, runtime, target, env);
  exchange.start();
  return exchange;
}

export { classify as classifyUpstreamError };
