/**
 * The per-request context (ctx.ts's RequestContext). One object per request,
 * built from the socket without copying headers; the pieces few requests need
 * (variables, plugin data, response state) are created on first use.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { BodyError, DataKey, PluginUpstream, RequestContext, RequestMeasures, ResponseState, UpstreamRequest, Vars } from '../plugin/ctx.js';
import { Headers } from './headers.js';
import { unmapIPv4 } from '../match/ip-match.js';
import type { ConsumerConf, RouteConf, ServiceConf, UpstreamConf } from '../model.js';
import type { PluginChain } from '../plugin/pipeline.js';
import type { CompiledRoute, Snapshot } from '../snapshot/snapshot.js';
import type { UpstreamRuntime, UpstreamTarget } from '../upstream/types.js';
import { headerValue, LazyVars } from './vars.js';
import { requestHost } from './request-host.js';
import type { GatewayError } from '../errors.js';
import { measuresOf } from './measures.js';
import { readRequestBody } from './request-body.js';
import { upgradeBody } from '../dataplane/upgrade-body.js';
import { keeperFor, type BodyKeeper } from './body-keeper.js';

/** Who ends a request: the data plane's flow (src/core/dataplane/flow.ts). */
export interface RequestEnd {
  /** The response closed, finished or cut off: stop the upstream exchange if the client left, then log. */
  closed(ctx: RequestCtx): void;
}

/** The proxy exchange (src/core/proxy/exchange.ts), as far as ending a request needs it. */
export interface ClientGoneListener {
  clientClosed(): void;
}

/** An upgrade request's connection: no longer an HTTP exchange once a handler or a tunnel takes it. */
export interface UpgradeState {
  readonly socket: Duplex;
  /** Bytes that arrived after the request head (a first WebSocket frame, or a body). */
  readonly head: Buffer;
  /**
   * Completes a WebSocket handshake through @fastify/websocket and hands over the
   * socket; undefined where the request cannot be a WebSocket one (not a GET).
   */
  readonly handshake: ((maxPayload: number | undefined) => Promise<WebSocket>) | undefined;
}

class UpstreamRequestState implements UpstreamRequest {
  host: string | undefined = undefined;
  body: Buffer | undefined = undefined;
  readonly headers: Headers;
  constructor(
    public method: string,
    public path: string,
    public query: string,
    req: IncomingMessage,
  ) {
    this.headers = new Headers(req.headers);
  }
}

class Response implements ResponseState {
  constructor(
    public status: number,
    readonly headers: Headers,
  ) {}
}

/**
 * What a connection's requests share: the peer and local addresses do not
 * change on a keep-alive socket, so they are read and formatted once per
 * socket (the first request on it), not per request.
 */
export class SocketInfo {
  /** `remote_addr`: a dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; APISIX's is a.b.c.d. */
  readonly remoteAddr: string;
  readonly remotePort: number;
  /** `X-Forwarded-Proto`. */
  readonly proto: string;
  /** `X-Forwarded-Port`: the port the client connected to. */
  readonly localPort: string;
  /** Is the peer in apisix.trusted_addresses? Decided on first use, once per connection. */
  trusted: boolean | undefined = undefined;
  constructor(socket: Socket) {
    this.remoteAddr = unmapIPv4(socket.remoteAddress ?? '');
    this.remotePort = socket.remotePort ?? 0;
    this.proto = (socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http';
    const port = socket.localPort;
    this.localPort = port === undefined ? '' : String(port);
  }
}

const kSocketInfo = Symbol('portico.socketInfo');
type InfoSocket = Socket & { [kSocketInfo]?: SocketInfo };

/** The socket's shared info, built by its first request. */
export function socketInfo(socket: Socket): SocketInfo {
  const s = socket as InfoSocket;
  let info = s[kSocketInfo];
  // Only a connected socket has its addresses; an aborted one is not cached half-read.
  if (info === undefined) {
    info = new SocketInfo(socket);
    if (socket.remoteAddress !== undefined) s[kSocketInfo] = info;
  }
  return info;
}

/** Before a route matched (global rules on a 404) plugins still see a route object, an empty one. */
const NO_ROUTE: RouteConf & { id: string } = Object.freeze({ id: '' });
const EMPTY_HEADERS = Object.freeze({});

export class RequestCtx implements RequestContext {
  readonly method: string;
  /** The socket's peer, until real-ip replaces it (setClientAddress). */
  remoteAddr: string;
  remotePort: number;
  readonly host: string;
  /** The connection's addresses, shared by its requests. */
  readonly socketInfo: SocketInfo;

  route: RouteConf & { id: string } = NO_ROUTE;
  service: (ServiceConf & { id: string }) | undefined = undefined;
  upstream: (UpstreamConf & { id?: string }) | undefined = undefined;
  consumer: ConsumerConf | undefined = undefined;

  /** Set once matched; the plugin chain in force (replaced by the consumer merge). */
  compiled: CompiledRoute | undefined = undefined;
  chain: PluginChain | undefined = undefined;
  /** Node of the current proxy attempt, for `upstream_addr` and logging. */
  target: UpstreamTarget | undefined = undefined;
  /** Phase-runner position, so an async plugin resumes where it left off without a closure per step. */
  step = 0;
  logged = false;
  /** Path parameters the router captured (`uri_param_<name>`). */
  params: Readonly<Record<string, string>> | undefined = undefined;
  /** The runtime `target` was picked from. */
  runtime: UpstreamRuntime | undefined = undefined;
  /** A plugin's choice of upstream over the route's (useUpstream): an upstream id or a plugin-built one. */
  upstreamChoice: string | PluginUpstream | undefined = undefined;

  // Data plane bookkeeping, declared here so every context has one shape.
  plane: RequestEnd | undefined = undefined;
  /** The upstream exchange in flight, told when the client goes away. */
  exchange: ClientGoneListener | undefined = undefined;
  /** Set when the request came as an HTTP upgrade: the raw socket and what followed the head. */
  upgrade: UpgradeState | undefined = undefined;
  /** A scheme handler or a WebSocket tunnel owns the socket; the response object no longer speaks for it. */
  takenOver = false;

  // The request headers the proxy needs, read off rawHeaders once with the same duplicate rules as Node's
  // `req.headers` (repeats joined with ", "; two Host lines are refused): a plain request never builds that object
  // (Node builds it on first read); plugins and `http_*` variables still get it when they ask.
  /**
   * The request's authority as routing reads it and the upstream gets it (pass_host "pass"): the
   * absolute-form target's, else the Host line's, trailing dot dropped (request-host.ts).
   */
  readonly hostHeader: string | undefined = undefined;
  /** Set when the host is ambiguous or malformed (two Host lines, a Host nginx would refuse): answer it, route nothing. */
  readonly hostError: GatewayError | undefined = undefined;
  /** Connection header values, joined. */
  readonly connectionHeader: string | undefined = undefined;
  /** X-Forwarded-For values, joined. */
  readonly forwardedForHeader: string | undefined = undefined;
  /** A Transfer-Encoding header came (Node de-chunks the body). */
  readonly chunked: boolean = false;
  /** A body follows: chunked, or a Content-Length other than 0. */
  readonly hasBody: boolean = false;

  /** Set when a plugin asked to keep the bodies (keepRequestBody/keepResponseBody). */
  requestKeeper: BodyKeeper | undefined = undefined;
  responseKeeper: BodyKeeper | undefined = undefined;

  private _var: Vars | undefined = undefined;
  private _body: Promise<Buffer | BodyError> | undefined = undefined;
  private _data: Record<string, unknown> | undefined = undefined;
  private _upstreamRequest: UpstreamRequestState | undefined = undefined;
  private _response: Response | undefined = undefined;
  sentHeaders: string[] | undefined = undefined;
  /** The upstream's status and raw header pairs, turned into `response` only when something reads it. */
  private _upstreamStatus = 0;
  private _upstreamHeaders: Buffer[] | undefined = undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly path: string,
    readonly query: string,
    readonly snapshot: Snapshot,
  ) {
    this.method = req.method ?? 'GET';
    const info = socketInfo(req.socket);
    this.socketInfo = info;
    this.remoteAddr = info.remoteAddr;
    this.remotePort = info.remotePort;
    const raw = req.rawHeaders;
    let hostLines = 0;
    let hostLine: string | undefined;
    let authority: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      // Decided on length and first letter, so most names skip the lower-casing.
      const first = name.charCodeAt(0) | 0x20;
      switch (name.length) {
        case 4:
          if (first === 0x68 && name.toLowerCase() === 'host' && hostLines++ === 0) hostLine = raw[i + 1]!;
          break;
        case 10:
          if (first === 0x63 && name.toLowerCase() === 'connection') this.connectionHeader = joined(this.connectionHeader, raw[i + 1]!);
          // HTTP/2's Host: node:http2 lists pseudo-headers first, so a Host header that follows still wins.
          else if (first === 0x3a && name === ':authority') authority = raw[i + 1]!;
          break;
        case 14:
          if (first === 0x63 && name.toLowerCase() === 'content-length' && raw[i + 1] !== '0') this.hasBody = true;
          break;
        case 15:
          if (first === 0x78 && name.toLowerCase() === 'x-forwarded-for') this.forwardedForHeader = joined(this.forwardedForHeader, raw[i + 1]!);
          break;
        case 17:
          if (first === 0x74 && name.toLowerCase() === 'transfer-encoding') this.chunked = this.hasBody = true;
          break;
      }
    }
    if (req.httpVersionMajor === 2) {
      // HTTP/2's Host: node:http2 lists pseudo-headers first, so a Host header that follows still wins.
      if (hostLine === undefined && authority !== undefined) {
        hostLine = authority;
        hostLines = 1;
      }
      // An HTTP/2 body needs no length header (gRPC sends none): the stream says whether DATA frames follow.
      if (!(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders) this.hasBody = true;
    }
    const host = requestHost(req.url ?? '/', hostLine, hostLines);
    if (typeof host === 'object') {
      this.hostError = host;
      this.host = '';
    } else {
      this.hostHeader = host;
      this.host = hostOf(host);
    }
  }

  get var(): Vars {
    return (this._var ??= new LazyVars(this));
  }

  /** The router reads `vars` (its MatchInput); the same lazy object. */
  get vars(): Vars {
    return (this._var ??= new LazyVars(this));
  }

  requestHeader(name: string): string | undefined {
    return headerValue(this.req, name);
  }

  useUpstream(upstream: string | PluginUpstream | undefined): void {
    this.upstreamChoice = upstream;
  }

  setClientAddress(addr: string, port?: number): void {
    this.remoteAddr = unmapIPv4(addr);
    if (port !== undefined) this.remotePort = port;
  }

  requestHeaders(): Readonly<Record<string, string | string[] | undefined>> {
    return this.req.headers;
  }

  requestHeaderPairs(): readonly string[] {
    return this.req.rawHeaders;
  }

  readBody(maxBytes: number): Promise<Buffer | BodyError> {
    return (this._body ??= this.readBodyOnce(maxBytes));
  }

  private async readBodyOnce(maxBytes: number): Promise<Buffer | BodyError> {
    if (!this.hasBody) return Buffer.alloc(0);
    const declared = this.chunked ? undefined : Number(this.req.headers['content-length'] ?? 0);
    const up = this.upgrade;
    // An upgrade request's body is not Node's to read: it follows the head on the raw socket.
    const stream = up === undefined ? this.req : upgradeBody(up.head, up.socket, declared ?? 0);
    const read = await readRequestBody(stream, declared, maxBytes);
    if (Buffer.isBuffer(read)) this.upstreamRequest.body = read;
    return read;
  }

  getData<T>(key: DataKey<T>): T | undefined {
    // The key's type is the only way a value gets into its slot (setData).
    return this._data?.[key.name] as T | undefined;
  }

  setData<T>(key: DataKey<T>, value: T): void {
    (this._data ??= {})[key.name] = value;
  }

  get measures(): RequestMeasures | undefined {
    return measuresOf(this.req);
  }

  keepRequestBody(maxBytes: number): void {
    this.requestKeeper = keeperFor(this.requestKeeper, maxBytes);
  }

  get requestBody(): Buffer | undefined {
    return this.requestKeeper?.body;
  }

  keepResponseBody(maxBytes: number): void {
    this.responseKeeper = keeperFor(this.responseKeeper, maxBytes);
  }

  get responseBody(): Buffer | undefined {
    return this.responseKeeper?.body;
  }

  get upstreamRequest(): UpstreamRequestState {
    return (this._upstreamRequest ??= new UpstreamRequestState(this.method, this.path, this.query, this.req));
  }

  /** The upstream request state if a plugin (or a variable read) created it; undefined means "as the client sent it". */
  peekUpstreamRequest(): UpstreamRequestState | undefined {
    return this._upstreamRequest;
  }

  /** The response state; before a response exists it reads as 200 with no headers. */
  get response(): Response {
    let r = this._response;
    if (r === undefined) {
      const raw = this._upstreamHeaders;
      r = raw === undefined ? new Response(200, new Headers(EMPTY_HEADERS)) : new Response(this._upstreamStatus, new Headers(raw));
      this._response = r;
    }
    return r;
  }

  get responseStatus(): number {
    const r = this._response;
    if (r !== undefined) return r.status;
    return this._upstreamHeaders !== undefined ? this._upstreamStatus : 200;
  }

  pluginMetadata<M extends object = Readonly<Record<string, unknown>>>(name: string): Readonly<M> | undefined {
    // The Admin API checked the stored object against the plugin's metadata_schema, which `M` describes.
    return this.snapshot.pluginMetadata.get(name) as Readonly<M> | undefined;
  }

  hasResponse(): boolean {
    return this._response !== undefined || this._upstreamHeaders !== undefined;
  }

  setResponse(status: number, headers: Headers): Response {
    this._upstreamHeaders = undefined;
    return (this._response = new Response(status, headers));
  }

  /** The upstream's response as undici delivered it; parsed into `response` on first read (log plugins). */
  setUpstreamResponse(status: number, rawHeaders: Buffer[]): void {
    this._response = undefined;
    this._upstreamStatus = status;
    this._upstreamHeaders = rawHeaders;
  }
}

function joined(prior: string | undefined, value: string): string {
  return prior === undefined ? value : `${prior}, ${value}`;
}

/** `Host` without port, lower-case; IPv6 literals keep their brackets, as nginx's $host. */
export function hostOf(header: string | undefined): string {
  if (header === undefined || header === '') return '';
  let end = header.length;
  if (header.charCodeAt(0) === 91 /* [ */) {
    const close = header.indexOf(']');
    if (close > 0) end = close + 1;
  } else {
    const colon = header.indexOf(':');
    if (colon >= 0) end = colon;
  }
  const host = end === header.length ? header : header.slice(0, end);
  // Most clients already send lower case; avoid the copy then.
  return /[A-Z]/.test(host) ? host.toLowerCase() : host;
}
