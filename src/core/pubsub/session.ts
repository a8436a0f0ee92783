/**
 * The pub/sub session: APISIX's `core.pubsub` (new / on / wait) over a `ws`
 * WebSocket. It knows the protocol, not the messaging system: a backend
 * (src/pubsub/kafka.ts, ...) registers one handler per command.
 *
 * Where APISIX falls short this does better, on purpose:
 * - a broken frame gets `wrong command` (sequence 0) instead of killing the connection;
 * - a response bigger than a frame becomes an ErrorResp instead of killing the session,
 *   and handlers are told the budget (`maxBytes`) so they can cut a fetch to fit;
 * - a slow reader pauses our reads instead of making us buffer without bound;
 * - an idle session is closed (APISIX keeps it forever).
 * Requests are still answered strictly in order, one at a time, as in APISIX.
 * Beyond APISIX: every command is checked against the route's access
 * (access-check.ts) before its handler runs, and `push()` sends frames
 * unasked (subscriptions.ts), under the same backpressure as answers.
 */
import type { IncomingMessage } from 'node:http';
import type { RawData, WebSocket } from 'ws';
import {
  decodeRequest,
  encodeResponse,
  maxBodyBytes,
  type CommandName,
  type CommandParams,
  type DecodedRequest,
  type PubSubResponseBody,
  type PushResp,
} from './codec.js';
import { PUBSUB_ACCESS } from '../plugin/pubsub-access.js';
import { accessDenied, READ_ONLY_ACCESS, type PubSubAccess } from './access-check.js';
import type { SchemeRequest } from './scheme-handler.js';
import type { UpstreamConf } from '../model.js';
import { pubsubUpgradeRequired } from '../errors.js';

export interface PubSubLogger {
  debug(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface PubSubSessionOptions {
  /** Largest frame accepted or sent (also pass it as `maxPayload` when accepting the socket). */
  maxFrameSize: number;
  /** Close the session after this long without a frame from the client; 0 = never. */
  idleTimeoutMs: number;
  logger?: PubSubLogger;
  /** Ends the session (close 1001) when aborted, e.g. on gateway shutdown. */
  signal?: AbortSignal;
  /** Stop reading and answering while more than this many bytes wait to be sent. Default max(64 KiB, maxFrameSize). */
  highWaterMark?: number;
  /** Stop reading while this many requests wait for their turn. Default 32. */
  maxPending?: number;
  /** What the route allows; read-only (any topic, no writes) when absent. */
  access?: PubSubAccess;
}

export interface HandlerContext {
  /** The request's sequence, echoed in the response by the session. */
  readonly sequence: bigint;
  /** Aborted when the session ends while the handler runs. */
  readonly signal: AbortSignal;
  /**
   * Budget for the response body (the bytes inside the oneof member, e.g.
   * the summed kafkaMessageWireSize of a fetch's messages) that still fits
   * one frame. A bigger answer is replaced by an ErrorResp.
   */
  readonly maxBytes: number;
  /** Runs `fn` once this command's answer has been handed to the socket (e.g. to start pushing after subscribe_resp). */
  afterAnswer(fn: () => void): void;
}

/** Resolve with the response; throw (or reject) to answer with ErrorResp carrying the error's message. */
export type CommandHandler<P> = (params: P, ctx: HandlerContext) => Promise<PubSubResponseBody> | PubSubResponseBody;

const OPEN = 1;
const CLOSED = 3;
const SEND_OPTS = { binary: true } as const;
const NOOP_LOGGER: PubSubLogger = { debug() {}, warn() {}, error() {} };

function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return e === undefined || e === null ? '' : String(e);
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class PubSubSession {
  private readonly ws: WebSocket;
  private readonly handlers = new Map<string, CommandHandler<never>>();
  private readonly log: PubSubLogger;
  private readonly maxFrameSize: number;
  /** Budget for one response body: what fits a frame (see HandlerContext.maxBytes). */
  readonly maxBytes: number;
  private readonly access: PubSubAccess;
  private readonly highWaterMark: number;
  private readonly maxPending: number;
  private readonly abort = new AbortController();
  private readonly queue: Buffer[] = [];
  private running = false;
  private ended = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private upstreamListener: ((upstream: UpstreamConf) => void) | undefined;
  private resolveDone!: () => void;
  private readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(ws: WebSocket, opts: PubSubSessionOptions) {
    this.ws = ws;
    this.log = opts.logger ?? NOOP_LOGGER;
    this.maxFrameSize = opts.maxFrameSize;
    this.maxBytes = maxBodyBytes(opts.maxFrameSize);
    this.highWaterMark = opts.highWaterMark ?? Math.max(64 * 1024, opts.maxFrameSize);
    this.maxPending = Math.max(1, opts.maxPending ?? 32);
    this.access = opts.access ?? READ_ONLY_ACCESS;

    // APISIX's default: a ping echoes its state. A backend may override it.
    this.handlers.set('cmd_ping', ((p: CommandParams['cmd_ping']) => ({ pong_resp: { state: p.state } })) as CommandHandler<never>);

    // Listeners go on before anything can await, so no frame is emitted unheard.
    ws.binaryType = 'nodebuffer';
    ws.on('message', this.onMessage);
    ws.on('ping', this.touch);
    ws.on('pong', this.touch);
    ws.on('error', this.onError);
    ws.on('close', this.onClose);

    if (opts.idleTimeoutMs > 0) {
      this.idleTimer = setTimeout(this.onIdle, opts.idleTimeoutMs, opts.idleTimeoutMs);
      this.idleTimer.unref();
    }
    if (opts.signal) {
      if (opts.signal.aborted) queueMicrotask(() => this.close(1001, 'going away'));
      else opts.signal.addEventListener('abort', () => this.close(1001, 'going away'), { once: true });
    }
    if (ws.readyState === CLOSED) {
      this.end('socket already closed');
      return;
    }
    // Whoever accepted the socket may have paused it so frames wait for us; reading is ours to steer now.
    if (ws.isPaused) ws.resume();
  }

  /**
   * Registers how the backend moves to the route's new upstream after a config
   * change (same scheme; core/pubsub/follow.ts): commands from then on use it.
   * A session without one is closed with a reason instead, so its client reconnects.
   */
  onUpstreamChange(fn: (upstream: UpstreamConf) => void): this {
    this.upstreamListener = fn;
    return this;
  }

  /** Hands a changed upstream to the backend; false when it cannot take one. */
  switchUpstream(upstream: UpstreamConf): boolean {
    if (this.ended || this.upstreamListener === undefined) return false;
    try {
      this.upstreamListener(upstream);
      return true;
    } catch (e) {
      this.log.warn(`pubsub session could not switch upstream, err: ${errorMessage(e)}`);
      return false;
    }
  }

  /** Registers (or replaces) the handler of a command, e.g. `cmd_kafka_fetch`. */
  on<K extends CommandName>(cmd: K, handler: CommandHandler<CommandParams[K]>): this {
    this.handlers.set(cmd, handler as CommandHandler<never>);
    return this;
  }

  /** Resolves once the session is over: closed by either side, failed, idle, or aborted. Never rejects. */
  wait(): Promise<void> {
    return this.done;
  }

  /** Aborted when the session ends. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /**
   * Sends a push frame (sequence 0) unasked. Resolves once it is handed to the
   * socket; waits first while the client reads slower than we send, so a
   * pusher that awaits this never buffers more than the high-water mark.
   */
  push(body: PushResp): Promise<void> {
    return this.send(0n, { push_resp: body });
  }

  /** True once the session is over. */
  get closed(): boolean {
    return this.ended;
  }

  /** Ends the session from the server side with a close frame. */
  close(code = 1000, reason = ''): void {
    if (this.ended) return;
    if (this.ws.readyState === OPEN) this.ws.close(code, reason);
    this.end(reason || `closed with ${code}`);
  }

  // ------------------------------------------------------------ socket events

  private readonly touch = (): void => {
    this.idleTimer?.refresh();
  };

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (this.ended) return;
    this.idleTimer?.refresh();
    if (!isBinary) {
      const text = toBuffer(data).subarray(0, 64).toString();
      this.log.warn(`pubsub server receive non-binary data, type: text, data: ${text}`);
      return;
    }
    const frame = toBuffer(data);
    if (frame.length > this.maxFrameSize) {
      // Only reachable when the socket was accepted with a larger maxPayload than ours.
      this.log.warn(`pubsub frame of ${frame.length} bytes exceeds max frame size ${this.maxFrameSize}`);
      this.close(1009, 'frame too large');
      return;
    }
    this.queue.push(frame);
    if (this.queue.length >= this.maxPending && !this.ws.isPaused) this.ws.pause();
    if (!this.running) void this.pump();
  };

  private readonly onError = (err: Error): void => {
    // ws follows an error with a close (1009 for an oversize frame, 1002 for protocol errors).
    this.log.warn(`pubsub websocket error: ${err.message}`);
    this.end(err.message);
  };

  private readonly onClose = (code: number): void => {
    this.end(`closed by peer (${code})`);
  };

  private readonly onIdle = (ms: number): void => {
    this.log.warn(`pubsub session idle for ${ms} ms, closing`);
    this.close(1001, 'idle timeout');
  };

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.queue.length = 0;
    this.abort.abort(new Error(`pubsub session ended: ${reason}`));
    this.log.debug(`pubsub session ended: ${reason}`);
    this.resolveDone();
  }

  // ------------------------------------------------------------ request loop

  /** Answers queued frames one at a time, so responses leave in request order. */
  private async pump(): Promise<void> {
    this.running = true;
    try {
      while (!this.ended && this.queue.length > 0) {
        await this.handle(this.queue.shift()!);
        this.maybeResume();
      }
    } catch (e) {
      this.log.error(`pubsub session failed: ${errorMessage(e)}`);
      this.close(1011, 'internal error');
    } finally {
      this.running = false;
    }
  }

  /** Reading resumes once both the request queue and the send buffer have room again. */
  private maybeResume(): void {
    if (this.ws.isPaused && !this.ended && this.queue.length <= this.maxPending >> 1 && this.ws.bufferedAmount <= this.highWaterMark) {
      this.ws.resume();
    }
  }

  private async handle(frame: Buffer): Promise<void> {
    let req: DecodedRequest;
    try {
      req = decodeRequest(frame);
    } catch (e) {
      this.log.warn(`pubsub server receives undecodable data, err: ${errorMessage(e)}`);
      return this.send(0n, { error_resp: { code: 0, message: 'wrong command' } });
    }
    const { sequence } = req;
    if (req.command === undefined) {
      if (req.unknownField === undefined) {
        this.log.warn('pubsub server receives empty command');
        return;
      }
      this.log.error(`pubsub callback handler not registered for the command, command: field ${req.unknownField}`);
      return this.send(sequence, { error_resp: { code: 0, message: 'unknown command' } });
    }
    const handler = this.handlers.get(req.command) as CommandHandler<unknown> | undefined;
    if (!handler) {
      this.log.error(`pubsub callback handler not registered for the command, command: ${req.command}`);
      return this.send(sequence, { error_resp: { code: 0, message: 'unknown command' } });
    }
    const denied = accessDenied(this.access, req.command, req.params);
    if (denied !== undefined) {
      this.log.warn(`pubsub command refused, command: ${req.command}, err: ${denied}`);
      return this.send(sequence, { error_resp: { code: 0, message: denied } });
    }
    let body: PubSubResponseBody;
    let after: Array<() => void> | undefined;
    const afterAnswer = (fn: () => void): void => void (after ??= []).push(fn);
    try {
      const out = handler(req.params, { sequence, signal: this.abort.signal, maxBytes: this.maxBytes, afterAnswer });
      body = out instanceof Promise ? await out : out;
      if (!body || typeof body !== 'object') body = { error_resp: { code: 0, message: 'handler returned no response' } };
    } catch (e) {
      body = { error_resp: { code: 0, message: errorMessage(e) } };
    }
    if (this.ended) return;
    await this.send(sequence, body);
    if (after) for (const fn of after) fn();
  }

  private async send(sequence: bigint, body: PubSubResponseBody): Promise<void> {
    let buf: Uint8Array;
    try {
      buf = encodeResponse({ ...body, sequence });
    } catch (e) {
      this.log.error(`failed to encode response message, err: ${errorMessage(e)}`);
      buf = encodeResponse({ sequence, error_resp: { code: 0, message: `failed to encode response: ${errorMessage(e)}` } });
    }
    if (buf.length > this.maxFrameSize) {
      const message = `response too large: ${buf.length} bytes exceeds max frame size ${this.maxFrameSize}`;
      this.log.error(`failed to send response to client, err: ${message}`);
      buf = encodeResponse({ sequence, error_resp: { code: 0, message } });
    }
    const ws = this.ws;
    if (this.ended || ws.readyState !== OPEN) return;
    if (ws.bufferedAmount + buf.length <= this.highWaterMark) {
      ws.send(buf, SEND_OPTS);
      return;
    }
    // The client reads slower than we answer: wait until this frame reached the kernel before taking
    // the next request; meanwhile the queue fills and reading pauses, so memory stays bounded.
    if (!ws.isPaused) ws.pause();
    await new Promise<void>((resolve) => {
      const signal = this.abort.signal;
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      ws.send(buf, SEND_OPTS, done);
    });
    // A push may have paused reading while no request was queued: nobody else would resume it.
    this.maybeResume();
  }
}

/**
 * Why a request cannot become a pub/sub WebSocket, checked in APISIX's order
 * with its messages (lua-resty-websocket's server:new), or undefined.
 */
export function handshakeError(req: IncomingMessage): string | undefined {
  if (req.httpVersion !== '1.1') return 'bad http version';
  const upgrade = req.headers.upgrade;
  if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') return `bad "upgrade" request header: ${upgrade ?? 'nil'}`;
  const connection = req.headers.connection;
  if (typeof connection !== 'string' || !connection.toLowerCase().includes('upgrade')) return 'bad "connection" request header';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return 'bad "sec-websocket-key" request header';
  if (req.headers['sec-websocket-version'] !== '13') return 'bad "sec-websocket-version" request header';
  if (req.method !== 'GET') return `bad http method: ${req.method ?? 'nil'}`;
  return undefined;
}

/**
 * The usual start of a pub/sub scheme handler: refuse a request that is not
 * a WebSocket upgrade with 400 `{"error_msg": ...}` (APISIX: 400), otherwise
 * accept it with the frame limit and wrap it in a session. Limits come from
 * `request.pubsub` (config `apisix.pubsub`) unless `opts` overrides them.
 * Returns undefined when the request was refused.
 */
export async function openPubSub(request: SchemeRequest, opts: Partial<PubSubSessionOptions> = {}): Promise<PubSubSession | undefined> {
  const full: PubSubSessionOptions = { ...request.pubsub, access: request.ctx.getData(PUBSUB_ACCESS), ...opts };
  const err = handshakeError(request.ctx.req) ?? (request.isUpgrade ? undefined : 'not a websocket upgrade request');
  if (err !== undefined) {
    full.logger?.warn(`failed to initialize pubsub module, err: ${err}`);
    const refused = pubsubUpgradeRequired(err);
    request.reject(refused.status, refused.body);
    return undefined;
  }
  const ws = await request.accept({ maxPayload: full.maxFrameSize });
  const session = new PubSubSession(ws, full);
  const unfollow = request.follow({
    switchUpstream: (upstream) => session.switchUpstream(upstream),
    close: (code, reason) => session.close(code, reason),
  });
  void session.wait().then(unfollow);
  return session;
}
