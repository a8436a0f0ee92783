/**
 * The data plane's HTTP server: one fastify instance per data-plane process.
 *
 * - Plain requests reach one catch-all route for every method Node parses.
 *   Its onRequest hook hijacks the reply and runs the pipeline
 *   (src/core/dataplane/flow.ts) on the raw request and response, so fastify
 *   never parses or buffers a body: bodies stream to the upstream untouched,
 *   whatever their content type, and APISIX's own answers (404, errors) keep
 *   their shapes.
 * - Upgrade requests are routed by @fastify/websocket through the same fastify
 *   router. GET upgrades reach a second catch-all route (told apart by an
 *   `upgrade` route constraint) in a child context where @fastify/websocket's
 *   hooks live, so plain requests never pay for them. The pipeline runs in
 *   that route's onRequest hook, before any handshake: an authentication
 *   failure is still an HTTP answer. Only when a scheme handler (pub/sub)
 *   accepts does the hook let fastify go on to the route's WebSocket handler,
 *   which completes the handshake and hands over the socket.
 * - WebSocket proxying to an upstream cannot go through @fastify/websocket,
 *   which completes the handshake itself: client bytes must reach the upstream
 *   only after the upstream's own 101. The flow takes the raw socket (and the
 *   bytes that came with the head, kept by the first 'upgrade' listener) from
 *   the same routing and tunnels it (src/core/proxy/websocket.ts).
 */
import { createServer, METHODS, ServerResponse, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import fastifyWebsocket, { type WebsocketPluginOptions } from '@fastify/websocket';
import { fastify, LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type RouteShorthandOptions } from 'fastify';
import type { ConstraintStrategy, HTTPVersion } from 'find-my-way';
import type { Logger } from 'pino';
import { createLogger } from '../log/logger.js';
import { WebSocket } from 'ws';
import { serverHeader } from '../config/version.js';
import type { RequestCtx } from '../http/request-context.js';
import { closeSchemeHandlers } from '../pubsub/scheme-handler.js';
import { ConfigSnapshot } from '../snapshot/snapshot.js';
import { TlsListeners } from '../tls/listeners.js';
import { acceptH2c } from '../tls/h2c.js';
import { BAD_REQUEST_RAW, RequestFlow, type FlowResponse } from './flow.js';
import type { DataPlane, DataPlaneOptions } from './types.js';
import { listenAs } from '../process/listen-error.js';
import { capConnections, httpServerLimits } from './connection-limits.js';

/** How long close() lets in-flight requests finish before cutting them. */
const DRAIN_MS = 5_000;

/** Serves in this process (inside a cluster worker, or in-process when asked). */
export async function startServing(opts: DataPlaneOptions): Promise<DataPlane> {
  const dp = new DataPlaneServer(opts);
  await dp.snapshots.start(opts.store);
  const tlsAddresses = await dp.listen();
  return {
    address: dp.server.address() as AddressInfo,
    tlsAddresses,
    close: () => dp.close(),
    snapshot: () => dp.snapshots.current,
    appliedRevision: () => dp.snapshots.appliedRevision,
    pluginsChanged: async () => dp.snapshots.pluginsChanged(),
    // Listening only after the first compile: serving in this process means loaded.
    notReady: () => undefined,
  };
}

/**
 * The data plane's response class (createServer's `ServerResponse` option):
 * it carries the request's context and ends the request when the response
 * closes, finished or cut off. An `emit` override rather than a 'close'
 * listener per response: adding and dispatching that listener was about 2%
 * of a plain request (A/B, both builds loaded at once).
 */
class GatewayResponse extends ServerResponse implements FlowResponse {
  ctx: RequestCtx | undefined = undefined;

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'close') endRequest(this.ctx);
    return super.emit(event, ...args);
  }
}

function endRequest(ctx: RequestCtx | undefined): void {
  if (ctx !== undefined) ctx.plane?.closed(ctx);
}

/** GatewayResponse for HTTP/2 requests (node:http2's compatibility API), with the same end-of-request hook. */
class GatewayH2Response extends Http2ServerResponse {
  ctx: RequestCtx | undefined = undefined;

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'close') endRequest(this.ctx);
    return super.emit(event, ...args);
  }
}

const kHead = Symbol('portico.upgradeHead');
const kHandshake = Symbol('portico.handshake');
const kMaxPayload = Symbol('portico.maxPayload');

interface UpgradeRequest extends IncomingMessage {
  /** Set by Node's parser: the request asked for a protocol upgrade (it came through the 'upgrade' event). */
  upgrade?: boolean;
  [kHead]?: Buffer;
  [kHandshake]?: { resolve(ws: WebSocket): void; reject(err: Error): void };
}

/**
 * ws applies one server-wide frame limit; a scheme handler asks for its own
 * when it accepts (`accept({ maxPayload })`), so the limit rides on the socket
 * into the handshake and the receiver is set up with it. `setSocket` is how
 * ws's own WebSocketServer attaches a socket (not in its type declarations).
 */
class SizedWebSocket extends WebSocket {}
type SetSocket = (this: WebSocket, socket: Duplex, head: Buffer, options: Record<string, unknown>) => void;
const baseSetSocket = (WebSocket.prototype as unknown as { setSocket: SetSocket }).setSocket;
Object.defineProperty(SizedWebSocket.prototype, 'setSocket', {
  value: function setSocket(this: WebSocket, socket: Duplex & { [kMaxPayload]?: number }, head: Buffer, options: Record<string, unknown>): void {
    const maxPayload = socket[kMaxPayload];
    baseSetSocket.call(this, socket, head, maxPayload === undefined ? options : { ...options, maxPayload });
  },
});

/** Routes upgrade requests apart from plain ones; read off the parser's own flag, not a header. */
const upgradeConstraint = {
  name: 'upgrade',
  storage() {
    const handlers = new Map<string, Handler>();
    return {
      get: (value: string) => handlers.get(value) ?? null,
      set: (value: string, store: Handler) => void handlers.set(value, store),
    };
  },
  // undefined (not derived) sends a plain request to the unconstrained route.
  deriveConstraint: (req: UpgradeRequest) => (req.upgrade === true ? 'yes' : (undefined as unknown as string)),
  mustMatchWhenDerived: false,
  validate() {},
};

type WsServerOptions = NonNullable<WebsocketPluginOptions['options']>;
type Handler = NonNullable<ReturnType<ReturnType<ConstraintStrategy<HTTPVersion.V1, string>['storage']>['get']>>;

const NO_QUERY = Object.freeze({});

class DataPlaneServer {
  readonly app: FastifyInstance;
  readonly server: Server;
  readonly snapshots: ConfigSnapshot;
  readonly logger: Logger;
  /** The HTTPS listeners (apisix.ssl), fed by the same routing as `server`. */
  readonly tls: TlsListeners;
  private readonly flow: RequestFlow;

  constructor(private readonly opts: DataPlaneOptions) {
    this.logger = opts.logger ?? createLogger('info');
    this.snapshots = new ConfigSnapshot({
      registry: opts.registry,
      config: opts.config,
      logger: this.logger,
      // Clients without SNI get the fallback_sni object's certificate: the listeners' default context follows the table.
      // Open pub/sub sessions follow their route: switched to a changed upstream, or closed with a reason.
      onSwap: (snapshot) => {
        this.tls?.refresh(snapshot.tls);
        this.flow?.followers.onSwap(snapshot);
      },
    });
    const { delete_uri_tail_slash: tailSlash, normalize_uri_like_servlet: servlet, pubsub } = opts.config.apisix;
    this.flow = new RequestFlow({
      snapshots: this.snapshots,
      logger: this.logger,
      serverHeader: serverHeader(opts.config),
      uriOptions: tailSlash === true || servlet === true ? { deleteUriTailSlash: tailSlash === true, likeServlet: servlet === true } : undefined,
      pubsub: { maxFrameSize: pubsub.max_frame_size, idleTimeoutMs: pubsub.idle_timeout * 1000 },
    });
    let server: Server | undefined;
    let routing: RequestListener | undefined;
    const limits = httpServerLimits(opts.config);
    this.app = fastify({
      serverFactory: (handler): Server => {
        routing = handler as unknown as RequestListener;
        // requestTimeout 0: a slow, large upload is bounded by the upstream's send/read timeouts, not a wall clock;
        // the request head has its own timeout (connection-limits.ts).
        // Typed as a plain Server for fastify's generics; its responses are GatewayResponses (see onPlain).
        server = createServer({ ...limits, ServerResponse: GatewayResponse }, handler) as unknown as Server;
        // First of the 'upgrade' listeners: keep the bytes that came after the head for the flow (a WebSocket
        // tunnel replays them after the upstream's 101; a plain proxied upgrade reads its body from them).
        server.prependListener('upgrade', (req: UpgradeRequest, _socket: Duplex, head: Buffer) => {
          req[kHead] = head;
        });
        return server;
      },
      clientErrorHandler: onClientError,
      logger: false,
      // No per-request log lines from fastify: the log phase and the access log are Portico's own.
      logController: new LogController({ disableRequestLogging: true }),
      // Requests already on a keep-alive connection when close() starts are served, not turned away with 503.
      return503OnClosing: false,
      forceCloseConnections: 'idle',
      exposeHeadRoutes: false,
      requestIdHeader: false,
      // The flow reads the query string itself, once; fastify's parse of it would be thrown away.
      routerOptions: { querystringParser: () => NO_QUERY, constraints: { upgrade: upgradeConstraint } },
      // A path find-my-way cannot decode goes to the flow too, which answers it in APISIX's shape.
      frameworkErrors: (_err, request, reply) => this.onPlain(request, reply),
    });
    this.server = server!;
    this.routes();
    const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => void this.server.emit('upgrade', req, socket, head);
    this.tls = new TlsListeners({
      config: opts.config.apisix,
      handler: routing!,
      upgrade,
      clientError: onClientError,
      http1Response: GatewayResponse,
      http2Response: GatewayH2Response,
      table: () => this.snapshots.current.tls,
      serverHeader: serverHeader(opts.config),
      logger: this.logger,
      limits,
    });
    capConnections(this.server, opts.config, this.logger, 'data plane (HTTP)');
    for (const s of this.tls.servers) capConnections(s, opts.config, this.logger, 'data plane (HTTPS)');
    // h2c (HTTP/2 with prior knowledge) beside HTTP/1.1 on the plain port, only when asked: it costs a look at each connection's first bytes.
    if (opts.config.apisix.node_listen.enable_http2 === true) acceptH2c(this.server, routing!, GatewayH2Response);
  }

  private routes(): void {
    const app = this.app;
    const methods = METHODS.filter((m) => m !== 'CONNECT');
    for (const m of methods) if (!app.supportedMethods.includes(m)) app.addHttpMethod(m, { hasBody: true });
    const plain: RouteShorthandOptions = {
      onRequest: (request, reply, done) => {
        reply.hijack();
        done();
        this.onPlain(request, reply);
      },
    };
    app.route({ method: methods, url: '/*', ...plain, handler: unreachable });
    // find-my-way places every request-target under `/*` (absolute-form and `*` too) and every method Node
    // parses is routed, so fastify's 404 route should never be reached; if it is, it enters the same flow,
    // and no body parser may read the body on the way: it belongs to the upstream.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (_request, _payload, done) => done(null));
    app.setNotFoundHandler((request, reply) => {
      reply.hijack();
      this.onPlain(request, reply);
    });
    void app.register(async (child) => {
      await child.register(fastifyWebsocket, {
        options: { WebSocket: SizedWebSocket as unknown as WsServerOptions['WebSocket'], maxPayload: this.opts.config.apisix.pubsub.max_frame_size },
        // Sessions report their own socket errors; ws still sends the close code (1009 for a frame too big).
        errorHandler: (err) => this.logger.debug({ err }, 'websocket error'),
        // close() ends upgraded sockets itself, after requests in flight had their chance.
        preClose: (done) => done(),
      });
      child.route({
        method: 'GET',
        url: '/*',
        constraints: { upgrade: 'yes' },
        onRequest: (request, reply, done) => this.onUpgradeGet(request.raw as UpgradeRequest, reply.raw, done),
        handler: unreachable,
        wsHandler: (ws, request) => {
          const pending = (request.raw as UpgradeRequest)[kHandshake];
          // Paused so a frame that arrived with the handshake waits for the handler's listeners.
          ws.pause();
          pending?.resolve(ws);
        },
      });
    });
  }

  /** Plain requests, and upgrades that cannot be WebSocket ones (not a GET). */
  private onPlain(request: FastifyRequest, reply: FastifyReply): void {
    const req = request.raw as UpgradeRequest;
    // An upgrade's response is @fastify/websocket's plain one on the raw socket; any other is the server's class.
    if (req.upgrade === true) this.flow.upgrade(req, reply.raw, req[kHead] ?? EMPTY, undefined);
    else this.flow.plain(req, reply.raw as GatewayResponse);
  }

  /**
   * A GET upgrade: the pipeline runs before any handshake. `done` (fastify's
   * lifecycle) is called only when a scheme handler accepts the WebSocket; a
   * request the flow answers or tunnels itself never returns to fastify, and
   * its socket's close frees it.
   */
  private onUpgradeGet(req: UpgradeRequest, res: ServerResponse, done: () => void): void {
    // `res` is the response @fastify/websocket put on the raw socket; the flow answers through it.
    const socket: Duplex = req.socket;
    const handshake = (maxPayload: number | undefined): Promise<WebSocket> =>
      new Promise<WebSocket>((resolve, reject) => {
        req[kHandshake] = { resolve, reject };
        (socket as Duplex & { [kMaxPayload]?: number })[kMaxPayload] = maxPayload;
        // ws refuses a malformed handshake with 400 and never calls back: the socket's close settles this.
        socket.once('close', () => reject(new Error('the client left before the WebSocket handshake completed')));
        done();
      });
    this.flow.upgrade(req, res, req[kHead] ?? EMPTY, handshake);
  }

  /** The plain listener, then the HTTPS ones; resolves with the latter's addresses. */
  async listen(): Promise<AddressInfo[]> {
    const { ip, port } = this.opts.config.apisix.node_listen;
    await listenAs('apisix.node_listen', ip, port, () => this.app.listen({ host: ip, port }));
    try {
      return await this.tls.listen();
    } catch (err) {
      await this.app.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const upgraded = this.flow.upgraded;
    const timer = setTimeout(() => {
      this.server.closeAllConnections();
      for (const s of upgraded) s.destroy();
    }, DRAIN_MS);
    timer.unref();
    for (const s of upgraded) s.destroy();
    await Promise.all([this.app.close(), this.tls.close(DRAIN_MS)]);
    clearTimeout(timer);
    await this.snapshots.close();
    await closeSchemeHandlers();
  }
}

const EMPTY = Buffer.alloc(0);

/** Never runs: every route's onRequest hook takes the request first. */
function unreachable(_request: FastifyRequest, reply: FastifyReply): void {
  reply.hijack();
}

/**
 * llhttp rejected the request (smuggling attempts land here): answer 400 and
 * drop the connection, unless a response on this connection already started:
 * a 400 written now would land inside its body, so the client (or a proxy in
 * front sharing the connection) would read a forged response. Node's own
 * handler makes the same check on the same internal field.
 */
function onClientError(err: Error & { code?: string }, socket: Duplex): void {
  // No complete head within client_header_timeout: closed without an answer, as nginx does.
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    socket.destroy();
    return;
  }
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && err.code !== 'ECONNRESET' && (inFlight == null || !inFlight.headersSent)) socket.end(BAD_REQUEST_RAW);
  else socket.destroy();
}
