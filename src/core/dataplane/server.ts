/**
 * The data plane: one node:http server running APISIX's request pipeline
 * (apisix-notes §5) over the current compiled snapshot, then proxying.
 *
 * Why node:http and not fastify: measured on this machine (architecture
 * sketch) a fastify catch-all with reply.hijack() costs the same as bare
 * node:http on this path; fastify would add nothing the pipeline uses (it has
 * its own router, which this path bypasses), while node:http gives direct
 * access to the `upgrade` event that both WebSocket proxying and the pub/sub
 * takeover need before any handshake is made.
 *
 * The flow is a small state machine (`advance`) over numbered steps, so a
 * chain of synchronous plugins runs straight through and only a plugin that
 * returns a promise costs a `then` (with the step number kept on the context,
 * not in a closure).
 */
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import { pino, type Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import type { PorticoConfig } from '../config/types.js';
import { serverHeader } from '../config/version.js';
import { ConfigSnapshot, consumerChain, type ConfigFeed, type PluginLookup, type Snapshot } from '../snapshot/snapshot.js';
import { encodeBody, ERRORS, sendError, type GatewayError } from '../errors.js';
import { Headers } from '../http/headers.js';
import { normalizeForRouting, normalizePath, plainPathEnd, type NormalizeOptions } from '../http/normalize-path.js';
import { runBodyFilter, runNotify, runPhase, type ChainEntry, type Exit, type PhaseResult } from '../plugin/pipeline.js';
import { ProxyExchange, type ProxyEnv } from '../proxy/exchange.js';
import { RequestCtx } from '../http/request-context.js';
import { closeSchemeHandlers, getSchemeHandler, type SchemeRequest } from '../pubsub/scheme-handler.js';
import type { DataPlane, DataPlaneOptions } from './types.js';
import { proxyWebSocket, writeRawError } from '../proxy/websocket.js';

/** How long close() lets in-flight requests finish before cutting them. */
const DRAIN_MS = 5_000;


/** Serves in this process (inside a cluster worker, or in-process when asked). */
export async function startServing(opts: DataPlaneOptions): Promise<DataPlane> {
  const dp = new DataPlaneServer(opts);
  await dp.snapshots.start(opts.store);
  await dp.listen();
  return {
    address: dp.server.address() as AddressInfo,
    close: () => dp.close(),
    snapshot: () => dp.snapshots.current,
    appliedRevision: () => dp.snapshots.appliedRevision,
  };
}

/**
 * The data plane's response class (createServer's `ServerResponse` option):
 * it carries the request's context and runs the end of the request when the
 * response closes, finished or cut off: the upstream exchange stops if the
 * client left, then the log phase runs. An `emit` override rather than a
 * 'close' listener per response: adding and dispatching that listener was
 * about 2% of a plain request (A/B, both builds loaded at once).
 */
class GatewayResponse extends ServerResponse {
  ctx: FlowCtx | undefined = undefined;

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'close') {
      const ctx = this.ctx;
      if (ctx !== undefined && !ctx.takenOver) {
        ctx.exchange?.clientClosed();
        ctx.plane?.runLog(ctx);
      }
    }
    return super.emit(event, ...args);
  }
}

interface UpgradeState {
  socket: Duplex;
  head: Buffer;
}

/** Per-request state the pipeline needs beyond RequestContext, kept off the public interface. */
type FlowCtx = RequestCtx & { plane: DataPlaneServer | undefined; exchange: ProxyExchange | undefined; upgrade: UpgradeState | undefined };

class DataPlaneServer {
  readonly server: Server<typeof IncomingMessage, typeof GatewayResponse>;
  readonly snapshots: ConfigSnapshot;
  readonly logger: Logger;
  private readonly env: ProxyEnv;
  private readonly serverHeader: string;
  private readonly wss = new WebSocketServer({ noServer: true });
  /** Sockets handed to WebSocket proxying or a scheme handler; no longer tracked by the http server. */
  private readonly upgraded = new Set<Duplex>();
  /** apisix.delete_uri_tail_slash / normalize_uri_like_servlet; undefined when both are off (the default). */
  private readonly uriOptions: NormalizeOptions | undefined;

  constructor(private readonly opts: DataPlaneOptions) {
    this.logger = opts.logger ?? pino({ level: 'info' });
    this.serverHeader = serverHeader(opts.config);
    this.snapshots = new ConfigSnapshot({ registry: opts.registry, config: opts.config, logger: this.logger });
    this.env = { logger: this.logger, serverHeader: this.serverHeader };
    const { delete_uri_tail_slash: tailSlash, normalize_uri_like_servlet: servlet } = opts.config.apisix;
    this.uriOptions = tailSlash === true || servlet === true ? { deleteUriTailSlash: tailSlash === true, likeServlet: servlet === true } : undefined;
    // Chosen once: with the URI options off, requests take onRequest's fast path and pay nothing for them.
    const onRequest =
      this.uriOptions === undefined
        ? (req: IncomingMessage, res: GatewayResponse) => this.onRequest(req, res)
        : (req: IncomingMessage, res: GatewayResponse) => this.onRequestWithUriOptions(req, res);
    // requestTimeout 0: a slow, large upload is bounded by the upstream's send/read timeouts, not a wall clock.
    this.server = createServer({ requestTimeout: 0, keepAliveTimeout: 60_000, ServerResponse: GatewayResponse }, onRequest);
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    this.server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
      // llhttp rejected the request (smuggling attempts land here): answer 400 and drop the connection,
      // unless a response on this connection already started: a 400 written now would land inside its
      // body, so the client (or a proxy in front sharing the connection) would read a forged response.
      // Node's own handler makes the same check on the same internal field.
      const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (socket.writable && err.code !== 'ECONNRESET' && (inFlight == null || !inFlight.headersSent)) socket.end(BAD_REQUEST_RAW);
      else socket.destroy();
    });
  }

  listen(): Promise<void> {
    const { ip, port } = this.opts.config.apisix.node_listen;
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: ip, port }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => {
      this.server.closeAllConnections();
      for (const s of this.upgraded) s.destroy();
    }, DRAIN_MS);
    timer.unref();
    for (const s of this.upgraded) s.destroy();
    await closed;
    clearTimeout(timer);
    this.wss.close();
    await this.snapshots.close();
    await closeSchemeHandlers();
  }

  // ---- entry points ------------------------------------------------------

  private onRequest(req: IncomingMessage, res: GatewayResponse): void {
    const url = req.url ?? '/';
    const end = plainPathEnd(url);
    let path: string;
    let query: string;
    if (end === url.length) {
      path = url;
      query = '';
    } else if (end >= 0) {
      path = url.slice(0, end);
      query = url.slice(end + 1);
    } else {
      const norm = normalizePath(url);
      if ('error' in norm) {
        sendError(res, ERRORS.badPath, { server: this.serverHeader });
        return;
      }
      path = norm.path;
      query = norm.query;
    }
    const ctx = new RequestCtx(req, res, path, query, this.snapshots.current) as FlowCtx;
    res.ctx = ctx;
    this.begin(ctx);
  }

  /**
   * onRequest with apisix.delete_uri_tail_slash or normalize_uri_like_servlet
   * on: routes and plugins see the rewritten path, the upstream the one from
   * before, as APISIX forwards it (a servlet upstream reads its `;jsessionid`).
   */
  private onRequestWithUriOptions(req: IncomingMessage, res: GatewayResponse): void {
    const target = normalizeForRouting(req.url ?? '/', this.uriOptions);
    if ('error' in target) {
      sendError(res, ERRORS.badPath, { server: this.serverHeader });
      return;
    }
    const ctx = new RequestCtx(req, res, target.path, target.query, this.snapshots.current) as FlowCtx;
    if (target.upstreamPath !== target.path) ctx.upstreamRequest.path = target.upstreamPath;
    res.ctx = ctx;
    this.begin(ctx);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', noop);
    // Node does not de-chunk an upgrade request's body (its bytes are `head` and what follows), and neither a
    // WebSocket handshake nor any upgrade Portico serves has one: refuse it rather than pass raw chunks on.
    if (req.headers['transfer-encoding'] !== undefined) {
      socket.end(BAD_REQUEST_RAW);
      return;
    }
    const target = normalizeForRouting(req.url ?? '/', this.uriOptions);
    if ('error' in target) {
      writeRawError(socket, ERRORS.badPath);
      return;
    }
    // A ServerResponse on the raw socket lets exits and errors use the same code as plain requests.
    const res = new GatewayResponse(req);
    res.assignSocket(socket as Socket);
    res.shouldKeepAlive = false;
    res.once('finish', () => socket.end());
    const ctx = new RequestCtx(req, res, target.path, target.query, this.snapshots.current) as FlowCtx;
    if (target.upstreamPath !== target.path) ctx.upstreamRequest.path = target.upstreamPath;
    ctx.upgrade = { socket, head };
    res.ctx = ctx;
    this.begin(ctx);
  }

  // ---- pipeline ----------------------------------------------------------

  private begin(ctx: FlowCtx): void {
    ctx.plane = this;
    const match = ctx.snapshot.router.match(ctx);
    if (match !== undefined) {
      const compiled = match.data;
      ctx.params = match.params;
      ctx.compiled = compiled;
      ctx.route = compiled.conf;
      ctx.service = compiled.service;
      ctx.chain = compiled.chain;
      if (compiled.failure !== undefined) {
        this.respondError(ctx, compiled.failure);
        return;
      }
      // No plugin anywhere (no global rule either): every phase step is empty, so only the upstream step is left.
      if (compiled.chain.entries.length === 0 && ctx.snapshot.globalChain.entries.length === 0) {
        this.proxyPlain(ctx);
        return;
      }
    }
    this.advance(ctx, 0);
  }

  /** advance() for a request no plugin sees: the same outcome, without walking the eight steps. */
  private proxyPlain(ctx: FlowCtx): void {
    let exit: Exit | undefined;
    try {
      exit = this.resolveUpstream(ctx);
    } catch (err) {
      this.pluginFailed(ctx, err);
      return;
    }
    if (ctx.takenOver) return;
    if (exit === undefined) this.dispatch(ctx);
    else this.respondExit(ctx, exit);
  }

  private step(ctx: FlowCtx, step: number): PhaseResult {
    const global = ctx.snapshot.globalChain;
    const chain = ctx.chain;
    switch (step) {
      case 0:
        return runPhase(global.rewrite, 'rewrite', ctx);
      case 1:
        return chain === undefined ? undefined : runPhase(chain.rewrite, 'rewrite', ctx);
      case 2:
        return chain === undefined || ctx.consumer === undefined ? undefined : this.mergeConsumer(ctx);
      case 3:
        return runPhase(global.access, 'access', ctx);
      case 4:
        return chain === undefined ? undefined : runPhase(chain.access, 'access', ctx);
      case 5:
        return this.resolveUpstream(ctx);
      case 6:
        return ctx.target === undefined ? undefined : runPhase(global.before_proxy, 'before_proxy', ctx);
      case 7:
        return ctx.target === undefined ? undefined : runPhase(chain!.before_proxy, 'before_proxy', ctx);
      default:
        return undefined;
    }
  }

  /** Runs steps from `from` on; on a promise, resumes from the next step when it settles. */
  private advance(ctx: FlowCtx, from: number): void {
    // The client left while an async plugin ran: nothing left to do (the log phase already ran on close).
    if (from > 0 && ctx.res.destroyed) return;
    let step = from;
    try {
      for (; step < STEP_COUNT; step++) {
        if (step === 5 && ctx.compiled === undefined) {
          // Global rewrite and access ran (and let it through): now the 404.
          this.respondExit(ctx, errorExit(ERRORS.routeNotFound));
          return;
        }
        const result = this.step(ctx, step);
        if (result === undefined) continue;
        if (result instanceof Promise) {
          ctx.step = step;
          result.then(
            (exit) => (exit === undefined ? this.advance(ctx, ctx.step + 1) : this.respondExit(ctx, exit)),
            (err: unknown) => this.pluginFailed(ctx, err),
          );
          return;
        }
        if (ctx.takenOver) return;
        this.respondExit(ctx, result);
        return;
      }
    } catch (err) {
      this.pluginFailed(ctx, err);
      return;
    }
    if (!ctx.takenOver) this.dispatch(ctx);
  }

  /** Consumer plugins override the route's; plugins new to the route run their rewrite now. */
  private mergeConsumer(ctx: FlowCtx): PhaseResult {
    const consumer = ctx.snapshot.consumers.get(ctx.consumer!.username);
    if (consumer === undefined) return undefined;
    // Its consumer group is gone: APISIX cannot build the consumer's plugin set and answers 503.
    if (consumer.groupMissing) return errorExit(ERRORS.unavailable);
    if (consumer.entries.length === 0) return undefined;
    const chain = consumerChain(ctx.compiled!, consumer);
    ctx.chain = chain;
    return runPhase(chain.rewriteInConsumer, 'rewrite', ctx);
  }

  /** Upstream resolution, scheme takeover and the balancer pick (§5 step 13). */
  private resolveUpstream(ctx: FlowCtx): Exit | undefined {
    const compiled = ctx.compiled!;
    let upstream = compiled.upstream;
    if (compiled.upstreamId !== undefined) {
      upstream = ctx.snapshot.upstreams.get(compiled.upstreamId);
      if (upstream === undefined) return this.failWith(ctx, ERRORS.upstreamNotFound);
    }
    if (upstream === undefined) return this.failWith(ctx, ERRORS.missingUpstream);
    ctx.upstream = upstream.conf;
    const handler = getSchemeHandler(upstream.conf.scheme);
    if (handler !== undefined) {
      this.takeOver(ctx, handler);
      return undefined;
    }
    const runtime = upstream.runtime;
    if (runtime === undefined) return this.failWith(ctx, ERRORS.unavailable);
    const target = runtime.pick(ctx);
    if (target === undefined) return this.failWith(ctx, ERRORS.noHealthyNode);
    ctx.target = target;
    ctx.runtime = runtime;
    return undefined;
  }

  /** A gateway error raised inside the step loop ends the request like a plugin exit (filters and log still run). */
  private failWith(ctx: FlowCtx, err: GatewayError): Exit {
    void ctx;
    return errorExit(err);
  }

  private dispatch(ctx: FlowCtx): void {
    const target = ctx.target!;
    const compiled = ctx.compiled!;
    const runtime = ctx.runtime!;
    const upgrade = ctx.upgrade;
    if (upgrade !== undefined && compiled.enableWebsocket) {
      ctx.takenOver = true;
      const res = ctx.res;
      res.detachSocket(upgrade.socket as Socket);
      this.upgraded.add(upgrade.socket);
      proxyWebSocket(ctx, runtime, target, upgrade.socket, upgrade.head, this.logger, () => {
        this.upgraded.delete(upgrade.socket);
        this.runLog(ctx);
      });
      return;
    }
    // An upgrade request on a route without WebSocket is proxied as a plain request; Node left its body unread.
    const length = upgrade === undefined ? 0 : Number(ctx.req.headers['content-length'] ?? 0);
    const body = length > 0 ? upgradeBody(upgrade!.head, upgrade!.socket, length) : undefined;
    ctx.exchange = new ProxyExchange(ctx, runtime, target, this.env, body);
    ctx.exchange.start();
  }

  /** Hands the request to a scheme handler (Kafka pub/sub); the log phase runs when its session ends. */
  private takeOver(ctx: FlowCtx, handler: NonNullable<ReturnType<typeof getSchemeHandler>>): void {
    ctx.takenOver = true;
    const upgrade = ctx.upgrade;
    const req = ctx.req;
    const isUpgrade =
      upgrade !== undefined &&
      req.method === 'GET' &&
      req.httpVersion === '1.1' &&
      String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
    let accepted = false;
    const pubsub = this.opts.config.apisix.pubsub;
    const request: SchemeRequest = {
      ctx,
      isUpgrade,
      pubsub: { maxFrameSize: pubsub.max_frame_size, idleTimeoutMs: pubsub.idle_timeout * 1000 },
      accept: (options) => {
        if (!isUpgrade || accepted) return Promise.reject(new Error('accept() needs an unanswered WebSocket upgrade request'));
        accepted = true;
        const socket = upgrade!.socket;
        ctx.res.detachSocket(socket as Socket);
        this.upgraded.add(socket);
        socket.once('close', () => this.upgraded.delete(socket));
        const wss = options?.maxPayload ? new WebSocketServer({ noServer: true, maxPayload: options.maxPayload }) : this.wss;
        return new Promise<WebSocket>((resolve, reject) => {
          try {
            // Paused so a frame that arrived with the handshake waits for the
            // handler's listeners instead of being emitted to nobody.
            wss.handleUpgrade(req, socket, upgrade!.head, (ws) => {
              ws.pause();
              resolve(ws);
            });
          } catch (err) {
            reject(err as Error);
          }
        });
      },
      reject: (status, body) => {
        if (accepted) return;
        this.writeBody(ctx, status, encodeBody(body), undefined);
      },
    };
    let session: Promise<void>;
    try {
      session = handler(request);
    } catch (err) {
      session = Promise.reject(err);
    }
    session.then(
      () => this.runLog(ctx),
      (err: unknown) => {
        this.logger.error({ err, route: ctx.route.id }, 'scheme handler failed');
        if (!accepted && !ctx.res.headersSent) sendError(ctx.res, ERRORS.internal, { server: this.serverHeader });
        else if (upgrade) upgrade.socket.destroy();
        this.runLog(ctx);
      },
    );
  }

  // ---- responses ---------------------------------------------------------

  private pluginFailed(ctx: FlowCtx, err: unknown): void {
    this.logger.error({ err, route: ctx.route.id, path: ctx.path }, 'plugin failed; answering 500');
    if (ctx.target !== undefined && ctx.exchange === undefined) ctx.runtime?.release(ctx.target);
    this.respondError(ctx, ERRORS.internal);
  }

  private respondError(ctx: FlowCtx, err: GatewayError): void {
    const res = ctx.res;
    if (res.headersSent || res.writableEnded) return;
    ctx.setResponse(err.status, new Headers({}));
    sendError(res, err, { server: this.serverHeader });
  }

  /** A plugin's `return code, body`: header_filter and body_filter still run, as in APISIX. */
  private respondExit(ctx: FlowCtx, exit: Exit): void {
    if (ctx.target !== undefined) {
      ctx.runtime?.release(ctx.target);
      ctx.target = undefined;
    }
    this.writeBody(ctx, exit.status, encodeBody(exit.body), exit.headers);
  }

  private writeBody(ctx: FlowCtx, status: number, body: { data: Buffer | string; json: boolean }, extra: Record<string, string> | undefined): void {
    const res = ctx.res;
    if (res.headersSent || res.writableEnded) return;
    const base: Record<string, string> = {};
    if (body.json) base['content-type'] = 'application/json';
    if (extra) for (const name of Object.keys(extra)) base[name.toLowerCase()] = extra[name]!;
    const headers = new Headers(base);
    ctx.setResponse(status, headers);
    const global = ctx.snapshot.globalChain;
    const chain = ctx.chain;
    let data: Buffer | string = body.data;
    try {
      runNotify(global.header_filter, 'header_filter', ctx);
      if (chain) runNotify(chain.header_filter, 'header_filter', ctx);
      const filters: readonly ChainEntry[] = chain ? [...global.body_filter, ...chain.body_filter] : global.body_filter;
      if (filters.length > 0) {
        const buf = typeof data === 'string' ? Buffer.from(data) : data;
        data = Buffer.concat([runBodyFilter(filters, ctx, buf, false), runBodyFilter(filters, ctx, EMPTY, true)]);
      }
    } catch (err) {
      this.logger.error({ err, route: ctx.route.id }, 'plugin failed in a filter phase; answering 500');
      sendError(res, ERRORS.internal, { server: this.serverHeader });
      return;
    }
    const flat = ctx.response.headers.flatten([], undefined, SERVER_AND_LENGTH);
    flat.push('server', this.serverHeader, 'content-length', String(Buffer.byteLength(data)));
    res.writeHead(ctx.response.status, flat);
    res.end(data);
  }

  runLog(ctx: FlowCtx): void {
    if (ctx.logged) return;
    ctx.logged = true;
    const global = ctx.snapshot.globalChain.log;
    const route = ctx.chain?.log;
    if (global.length === 0 && (route === undefined || route.length === 0)) return;
    for (const list of route === undefined ? [global] : [global, route]) {
      for (const entry of list) {
        try {
          if (entry.filter !== undefined && !entry.filter(ctx.var)) continue;
          entry.def.log!(entry.conf, ctx);
        } catch (err) {
          this.logger.error({ err, plugin: entry.name }, 'plugin failed in log phase');
        }
      }
    }
  }
}

const STEP_COUNT = 8;
const BAD_REQUEST_RAW = 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

/**
 * The body of an upgrade request served as a plain request: exactly
 * Content-Length bytes (llhttp already refused a malformed or duplicate one)
 * from `head` and then the socket, paused when the upstream is. Bytes after it
 * are never parsed: the connection closes after the response.
 */
function upgradeBody(head: Buffer, socket: Duplex, length: number): Readable {
  let left = length;
  const body = new Readable({ read: () => void socket.resume() });
  const stop = (): void => {
    socket.off('data', take);
    socket.off('end', early);
    socket.off('close', early);
    socket.pause();
  };
  const early = (): void => {
    stop();
    body.destroy(new Error('client closed before the request body ended'));
  };
  function take(chunk: Buffer): void {
    const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= part.length;
    const more = body.push(part);
    if (left === 0) {
      stop();
      body.push(null);
    } else if (!more) socket.pause();
  }
  if (head.length > 0) take(head);
  if (left > 0) {
    socket.on('data', take);
    socket.once('end', early);
    socket.once('close', early);
  }
  return body;
}
const EMPTY = Buffer.alloc(0);
const SERVER_AND_LENGTH: ReadonlySet<string> = new Set(['server', 'content-length']);
const errorExits = new Map<GatewayError, Exit>();
function errorExit(err: GatewayError): Exit {
  let exit = errorExits.get(err);
  if (exit === undefined) {
    exit = { status: err.status, body: err.body, headers: err.body.length > 0 ? { 'content-type': 'application/json' } : undefined, plugin: '' };
    errorExits.set(err, exit);
  }
  return exit;
}
function noop(): void {}
