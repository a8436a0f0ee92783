/**
 * APISIX's request pipeline (apisix/init.lua's http_access_phase and what
 * follows it) over the current compiled snapshot, then the hand-off to the
 * proxy, a WebSocket tunnel or a scheme handler.
 *
 * The flow is a small state machine (`advance`) over numbered steps, so a
 * chain of synchronous plugins runs straight through and only a plugin that
 * returns a promise costs a `then` (with the step number kept on the context,
 * not in a closure).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { ERRORS, sendError } from '../errors.js';
import { normalizeForRouting, normalizePath, plainPathEnd, type NormalizeOptions } from '../http/normalize-path.js';
import { RequestCtx, type RequestEnd } from '../http/request-context.js';
import { KeepingStream } from '../http/body-keeper.js';
import { failureFields, runLog, runPhase, type Exit, type PhaseResult } from '../plugin/pipeline.js';
import { ProxyExchange, type ProxyEnv } from '../proxy/exchange.js';
import { proxyWebSocket, writeRawError } from '../proxy/websocket.js';
import { SessionFollowers } from '../pubsub/follow.js';
import { getSchemeHandler, type SchemeRequest } from '../pubsub/scheme-handler.js';
import { consumerChain, type CompiledUpstream, type ConfigSnapshot } from '../snapshot/snapshot.js';
import { errorExit, Responder } from './respond.js';
import { takeOver, type TakeoverEnv } from './takeover.js';
import { upgradeBody } from './upgrade-body.js';

export interface FlowOptions {
  readonly snapshots: ConfigSnapshot;
  readonly logger: Logger;
  readonly serverHeader: string;
  /** apisix.delete_uri_tail_slash / normalize_uri_like_servlet; undefined when both are off (the default). */
  readonly uriOptions: NormalizeOptions | undefined;
  readonly pubsub: SchemeRequest['pubsub'];
}

/**
 * The response class of plain requests (src/core/dataplane/server.ts): it
 * carries the request's context and ends the request when it closes.
 */
export interface FlowResponse extends ServerResponse {
  ctx: RequestCtx | undefined;
}

const STEP_COUNT = 8;
/** A bare 400 for a raw socket that never became an HTTP exchange (llhttp's refusals, chunked upgrades). */
export const BAD_REQUEST_RAW = 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

export class RequestFlow implements RequestEnd, TakeoverEnv {
  readonly logger: Logger;
  readonly responder: Responder;
  readonly pubsub: SchemeRequest['pubsub'];
  /** Sockets handed to WebSocket proxying or a scheme handler; no longer tracked by the HTTP server. */
  readonly upgraded = new Set<Duplex>();
  /** Open pub/sub sessions, told of each config change (pubsub/follow.ts). */
  readonly followers: SessionFollowers;
  private readonly snapshots: ConfigSnapshot;
  private readonly env: ProxyEnv;
  private readonly uriOptions: NormalizeOptions | undefined;
  /** The entry for plain requests, chosen once: with the URI options off, requests pay nothing for them. */
  readonly plain: (req: IncomingMessage, res: FlowResponse) => void;

  constructor(opts: FlowOptions) {
    this.snapshots = opts.snapshots;
    this.logger = opts.logger;
    this.responder = new Responder(opts.logger, opts.serverHeader);
    this.env = { logger: opts.logger, serverHeader: opts.serverHeader };
    this.uriOptions = opts.uriOptions;
    this.pubsub = opts.pubsub;
    this.followers = new SessionFollowers(opts.logger);
    this.plain = this.uriOptions === undefined ? (req, res) => this.plainRequest(req, res) : (req, res) => this.plainWithUriOptions(req, res);
  }

  // ---- entry points ------------------------------------------------------

  private plainRequest(req: IncomingMessage, res: FlowResponse): void {
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
        sendError(res, ERRORS.badPath, { server: this.responder.serverHeader });
        return;
      }
      path = norm.path;
      query = norm.query;
    }
    const ctx = new RequestCtx(req, res, path, query, this.snapshots.current);
    res.ctx = ctx;
    this.begin(ctx);
  }

  /**
   * plainRequest with apisix.delete_uri_tail_slash or normalize_uri_like_servlet
   * on: routes and plugins see the rewritten path, the upstream the one from
   * before, as APISIX forwards it (a servlet upstream reads its `;jsessionid`).
   */
  private plainWithUriOptions(req: IncomingMessage, res: FlowResponse): void {
    const target = normalizeForRouting(req.url ?? '/', this.uriOptions);
    if ('error' in target) {
      sendError(res, ERRORS.badPath, { server: this.responder.serverHeader });
      return;
    }
    const ctx = new RequestCtx(req, res, target.path, target.query, this.snapshots.current);
    if (target.upstreamPath !== target.path) ctx.upstreamRequest.path = target.upstreamPath;
    res.ctx = ctx;
    this.begin(ctx);
  }

  /**
   * An HTTP upgrade request. `res` is a response on the raw socket, so exits
   * and errors use the same code as plain requests; the connection closes
   * after it. `handshake` completes a WebSocket handshake (GET only).
   */
  upgrade(req: IncomingMessage, res: ServerResponse, head: Buffer, handshake: ((maxPayload: number | undefined) => Promise<WebSocket>) | undefined): void {
    const socket = req.socket as Duplex;
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
    res.shouldKeepAlive = false;
    res.once('finish', () => socket.end());
    const ctx = new RequestCtx(req, res, target.path, target.query, this.snapshots.current);
    if (target.upstreamPath !== target.path) ctx.upstreamRequest.path = target.upstreamPath;
    ctx.upgrade = { socket, head, handshake };
    // The response here is not the data plane's own class: end the request when it closes, as that class does.
    res.once('close', () => this.closed(ctx));
    this.begin(ctx);
  }

  /** The response closed, finished or cut off: stop the upstream exchange if the client left, then log. */
  closed(ctx: RequestCtx): void {
    if (ctx.takenOver) return;
    ctx.exchange?.clientClosed();
    this.end(ctx);
  }

  /** The log phase, once per request. */
  end(ctx: RequestCtx): void {
    if (ctx.logged) return;
    ctx.logged = true;
    const chain = ctx.chain;
    const global = ctx.snapshot.globalChain;
    if (global.log.length === 0 && (chain === undefined || chain.log.length === 0)) return;
    runLog(global, chain, ctx, (err, plugin) => this.logger.error({ err, plugin }, 'plugin failed in log phase'));
  }

  // ---- pipeline ----------------------------------------------------------

  private begin(ctx: RequestCtx): void {
    ctx.plane = this;
    // Host rules (src/core/http/request-host.ts): two Host lines or a malformed one get a 400 before routing.
    if (ctx.hostError !== undefined) {
      this.responder.error(ctx, ctx.hostError);
      return;
    }
    const match = ctx.snapshot.router.match(ctx);
    if (match !== undefined) {
      const compiled = match.data;
      ctx.params = match.params;
      ctx.compiled = compiled;
      ctx.route = compiled.conf;
      ctx.service = compiled.service;
      ctx.chain = compiled.chain;
      if (compiled.failure !== undefined) {
        this.responder.error(ctx, compiled.failure);
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
  private proxyPlain(ctx: RequestCtx): void {
    let exit: Exit | undefined;
    try {
      exit = this.resolveUpstream(ctx);
    } catch (err) {
      this.pluginFailed(ctx, err);
      return;
    }
    if (ctx.takenOver) return;
    if (exit === undefined) this.dispatch(ctx);
    else this.responder.exit(ctx, exit);
  }

  private step(ctx: RequestCtx, step: number): PhaseResult {
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
  private advance(ctx: RequestCtx, from: number): void {
    // The client left while an async plugin ran: nothing left to do (the log phase already ran on close).
    if (from > 0 && ctx.res.destroyed) return;
    let step = from;
    try {
      for (; step < STEP_COUNT; step++) {
        if (step === 5 && ctx.compiled === undefined) {
          // Global rewrite and access ran (and let it through): now the 404.
          this.responder.exit(ctx, errorExit(ERRORS.routeNotFound));
          return;
        }
        const result = this.step(ctx, step);
        if (result === undefined) continue;
        if (result instanceof Promise) {
          ctx.step = step;
          result.then(
            (exit) => (exit === undefined ? this.advance(ctx, ctx.step + 1) : this.responder.exit(ctx, exit)),
            (err: unknown) => this.pluginFailed(ctx, err),
          );
          return;
        }
        if (ctx.takenOver) return;
        this.responder.exit(ctx, result);
        return;
      }
    } catch (err) {
      this.pluginFailed(ctx, err);
      return;
    }
    if (!ctx.takenOver) this.dispatch(ctx);
  }

  /** Consumer plugins override the route's; plugins new to the route run their rewrite now. */
  private mergeConsumer(ctx: RequestCtx): PhaseResult {
    const consumer = ctx.snapshot.consumers.get(ctx.consumer!.username);
    if (consumer === undefined) return undefined;
    // Its consumer group is gone: APISIX cannot build the consumer's plugin set and answers 503.
    if (consumer.groupMissing) return errorExit(ERRORS.unavailable);
    if (consumer.entries.length === 0) return undefined;
    const chain = consumerChain(ctx.compiled!, consumer);
    ctx.chain = chain;
    return runPhase(chain.rewriteInConsumer, 'rewrite', ctx);
  }

  /** Upstream resolution, scheme takeover and the balancer pick (APISIX's handle_upstream). */
  private resolveUpstream(ctx: RequestCtx): Exit | undefined {
    const compiled = ctx.compiled!;
    let upstream = compiled.upstream;
    const choice = ctx.upstreamChoice;
    const upstreamId = choice === undefined ? compiled.upstreamId : typeof choice === 'string' ? choice : undefined;
    // Only the snapshot's PluginConfCompiler builds a PluginUpstream, and it builds a CompiledUpstream.
    if (choice !== undefined && typeof choice !== 'string') upstream = choice as CompiledUpstream;
    else if (upstreamId !== undefined) {
      upstream = ctx.snapshot.upstreams.get(upstreamId);
      if (upstream === undefined) return errorExit(ERRORS.upstreamNotFound);
    }
    if (upstream === undefined) return errorExit(ERRORS.missingUpstream);
    ctx.upstream = upstream.conf;
    const handler = getSchemeHandler(upstream.conf.scheme);
    if (handler !== undefined) {
      takeOver(ctx, handler, this, upstream);
      return undefined;
    }
    const runtime = upstream.runtime;
    if (runtime === undefined) return errorExit(ERRORS.unavailable);
    const target = runtime.pick(ctx);
    if (target === undefined) return errorExit(ERRORS.noHealthyNode);
    ctx.target = target;
    ctx.runtime = runtime;
    return undefined;
  }

  private dispatch(ctx: RequestCtx): void {
    const target = ctx.target!;
    const compiled = ctx.compiled!;
    const runtime = ctx.runtime!;
    const upgrade = ctx.upgrade;
    if (upgrade !== undefined && compiled.enableWebsocket) {
      // Tunnelled raw, not through @fastify/websocket: the client's bytes may reach the upstream only after the
      // upstream's own 101, and the handshake answer is relayed byte for byte (src/core/proxy/websocket.ts).
      ctx.takenOver = true;
      ctx.res.detachSocket(upgrade.socket as Socket);
      this.upgraded.add(upgrade.socket);
      proxyWebSocket(ctx, runtime, target, upgrade.socket, upgrade.head, this.logger, () => {
        this.upgraded.delete(upgrade.socket);
        this.end(ctx);
      });
      return;
    }
    // An upgrade request on a route without WebSocket is proxied as a plain request; Node left its body unread.
    // A plugin that read the body (readBody) already took it off the socket; the buffered copy goes instead.
    const buffered = ctx.peekUpstreamRequest()?.body;
    const length = upgrade === undefined || buffered !== undefined ? 0 : Number(ctx.req.headers['content-length'] ?? 0);
    let body: Readable | undefined = length > 0 ? upgradeBody(upgrade!.head, upgrade!.socket, length) : undefined;
    // A plugin keeps the request body (a logger's include_req_body): the body reaches the upstream through a tee,
    // or, when a plugin already read it whole, is kept from that copy.
    const keeper = ctx.requestKeeper;
    if (keeper !== undefined && ctx.hasBody) {
      if (buffered !== undefined) keeper.add(buffered);
      else body = (body ?? ctx.req).pipe(new KeepingStream(keeper));
    }
    const exchange = new ProxyExchange(ctx, runtime, target, this.env, body);
    ctx.exchange = exchange;
    exchange.start();
  }

  private pluginFailed(ctx: RequestCtx, err: unknown): void {
    // APISIX: a Lua error in a phase handler ends that request with a 500; every other request goes on.
    this.logger.error({ ...failureFields(err), route: ctx.route.id, path: ctx.path }, 'plugin failed; answering 500');
    if (ctx.target !== undefined && ctx.exchange === undefined) ctx.runtime?.release(ctx.target);
    this.responder.error(ctx, ERRORS.internal);
  }
}
