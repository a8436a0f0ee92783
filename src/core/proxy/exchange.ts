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
import { Headers } from '../http/headers.js';
import type { TimeoutConf } from '../model.js';
import { encodePath } from '../http/normalize-path.js';
import { bodyFilters, failureFields, runBodyFilter, runHeaderFilter, type ChainEntry } from '../plugin/pipeline.js';
import type { RequestCtx } from '../http/request-context.js';
import type { UpstreamOutcome, UpstreamRuntime, UpstreamTarget } from '../upstream/types.js';
import type { Logger } from 'pino';
import { grpcFailureHeaders, relayTrailers, takeGrpcStatus } from './grpc-status.js';
import { relayedHeaders } from './relayed-response-headers.js';
import { clientUpstreamHeaders, upstreamHeaders, upstreamHost } from './upstream-request-headers.js';

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
  /**
   * A gRPC upstream's trailers-only answer (grpc-status in the response
   * head, no body): relayed head then trailers, so the status moves to the
   * trailers, where a client looks once the head has no END_STREAM.
   */
  private statusInHead: Record<string, string> | undefined = undefined;
  /** The upstream's scheme is grpc or grpcs. */
  private readonly grpc: boolean;

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
    this.grpc = conf.scheme === 'grpc' || conf.scheme === 'grpcs';
    this.retriesLeft = runtime.retries;
    this.retryDeadline = conf.retry_timeout ? performance.now() + conf.retry_timeout * 1000 : Infinity;
    this.timeout = ctx.compiled?.timeout ?? conf.timeout;
    const read = (this.timeout?.read ?? DEFAULT_TIMEOUT_S) * 1000;
    const routeConnect = ctx.compiled?.timeout?.connect;
    // The pool enforces the upstream's connect timeout; a route that differs uses a pool built with its own.
    this.connectMs = routeConnect !== undefined && routeConnect * 1000 !== runtime.connectTimeoutMs ? routeConnect * 1000 : 0;
    // No plugin touched the upstream request (the common case): forward what the client sent, without building edit state.
    const up = ctx.peekUpstreamRequest();
    // A body a plugin read or rewrote is sent from memory; otherwise the client's streams through.
    const buffered = up?.body;
    const body = buffered !== undefined ? buffered : ctx.hasBody ? ((bodyStream ?? ctx.req) as BodyStream) : null;
    this.sendMs = 0;
    if (body !== null && !Buffer.isBuffer(body)) {
      this.sendMs = (this.timeout?.send ?? DEFAULT_TIMEOUT_S) * 1000;
      body[kExchange] = this;
      body.on('pause', onBodyPause);
      body.on('resume', onBodyResume);
    }
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
        this.env.logger.error({ ...failureFields(err), route: ctx.route.id }, 'plugin failed in header_filter');
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
    if (this.grpc && ctx.req.httpVersionMajor === 2) this.statusInHead = takeGrpcStatus(out);
    try {
      ctx.res.writeHead(status, out);
      ctx.sentHeaders = out;
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
        this.env.logger.error({ ...failureFields(err), route: this.ctx.route.id }, 'plugin failed in body_filter');
        res.destroy();
        return false;
      }
      if (chunk.length === 0) return true;
    }
    this.ctx.responseKeeper?.add(chunk);
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

  onComplete(trailers: string[] | null): void {
    this.finished = true;
    // gRPC's status travels in trailers; HTTP/1.1 clients get none (a chunked trailer section is not relayed).
    // (Typed as undici declares it; at run time HTTP/1.1 trailers come as raw Buffer pairs and HTTP/2 ones as an object.)
    if (this.statusInHead !== undefined) this.ctx.res.addTrailers(this.statusInHead);
    if (trailers != null && this.ctx.req.httpVersionMajor === 2) relayTrailers(this.ctx.res, trailers as unknown as Buffer[] | Record<string, string | string[]>);
    if (this.sendMs !== 0) this.stopSendTimer();
    this.runtime.release(this.target);
    const res = this.ctx.res;
    if (this.filters.length > 0) {
      let tail: Buffer;
      try {
        tail = runBodyFilter(this.filters, this.ctx, EMPTY, true);
      } catch (err) {
        this.env.logger.error({ ...failureFields(err), route: this.ctx.route.id }, 'plugin failed in body_filter');
        res.destroy();
        return;
      }
      this.ctx.responseKeeper?.add(tail);
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
    const hint = certificateHint(err.code, this.runtime.conf);
    this.env.logger.warn({ upstream: target.key, route: this.ctx.route.id, code: err.code, err: err.message, hint }, 'proxy: upstream failed');
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
    sendError(res, error, this.grpc ? grpcFailureHeaders(error.status, this.env.serverHeader) : { server: this.env.serverHeader });
  }
}

const EMPTY = Buffer.alloc(0);
const SERVER_ONLY: ReadonlySet<string> = new Set(['server']);
/** With body_filter plugins the body may change length, so the upstream's Content-Length cannot stand. */
const SERVER_AND_LENGTH: ReadonlySet<string> = new Set(['server', 'content-length']);

/** TLS verification failures (Node's codes for an untrusted, expired or misnamed certificate). */
const CERTIFICATE_FAILURE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME/;

/**
 * Portico verifies upstream certificates unless told not to, where APISIX does
 * not (src/core/upstream/pool.ts): an upstream that worked behind APISIX with a
 * self-signed certificate fails here, so the log line says how to opt out.
 */
function certificateHint(code: string | undefined, conf: { tls?: { verify?: boolean } }): string | undefined {
  if (code === undefined || conf.tls?.verify === false || !CERTIFICATE_FAILURE.test(code)) return undefined;
  return "the upstream's certificate failed verification, which Portico does by default (APISIX does not): set the upstream's tls.verify: false to accept it, or give the node a certificate this machine trusts";
}
