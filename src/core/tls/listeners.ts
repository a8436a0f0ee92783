/**
 * The HTTPS listeners (apisix.ssl.listen) and h2c on the plain port, fed by
 * the same request handler as the plain listener (fastify's routing, built
 * once in src/core/dataplane/server.ts), so every protocol runs the same flow.
 *
 * - A listener with HTTP/2 is node:http2's secure server with HTTP/1.1 beside
 *   it (ALPN h2, http/1.1); without, node:https.
 * - The certificate is picked per handshake by SNI from the current
 *   snapshot's table (sni-table.ts): a table swap is seen by the next
 *   handshake, and open connections keep the context they started with.
 * - Unknown SNI: the handshake fails. No SNI: the fallback_sni object's
 *   certificate, set as the listener's default context when the table
 *   changes; without fallback_sni the default context has no certificate,
 *   so the handshake fails, as APISIX's does. (It must stay empty: OpenSSL
 *   picks the certificate type from the default context before Node's SNI
 *   callback swaps in the object's, and a placeholder of another type would
 *   be served in its place.)
 * - Known limit: an object with an RSA and an ECDSA pair serves ECDSA to
 *   every client that accepts it; a client that signs with RSA only fails the
 *   handshake (the same ordering inside Node's SNI handling).
 * - mTLS (`client.ca`): the matched object's CA verifies the client. Node
 *   sets the verify mode per socket before the handshake, and the SNI
 *   callback runs as a method of the socket (`this`), so the mode is set
 *   there for the objects that ask for a certificate and no other client is
 *   asked for one. Without skip_mtls_uri_regex a missing or invalid
 *   certificate fails the connection; with it the connection goes on and
 *   requests outside those paths get 400 (checkClientCert).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session, type SecureServerOptions, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo, Server } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContext, SecureContextOptions, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { PorticoConfig, SslListen } from '../config/types.js';
import { ERRORS, sendError } from '../errors.js';
import { hostOf } from '../http/request-context.js';
import { connectionOf, setTlsState, tlsStateOf } from './connection.js';
import { tlsBaseOptions } from './options.js';
import { verifiedChainLength } from './chain-depth.js';
import { normalizeSni, type SniEntry, type SniTable } from './sni-table.js';
import { listenAs } from '../process/listen-error.js';

export interface TlsListenEnv {
  readonly config: PorticoConfig['apisix'];
  /** The routing every listener shares. */
  readonly handler: RequestListener;
  /** HTTP/1.1 upgrades (WebSocket) on a TLS listener go where the plain listener's go. */
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  readonly clientError: (err: Error & { code?: string }, socket: Duplex) => void;
  readonly http1Response: new (req: IncomingMessage) => ServerResponse;
  readonly http2Response: new (stream: ServerHttp2Stream) => Http2ServerResponse;
  /** The current snapshot's table. */
  readonly table: () => SniTable;
  readonly serverHeader: string;
  readonly logger: Logger;
  /** The plain listener's HTTP/1.1 timeouts (src/core/dataplane/connection-limits.ts). */
  readonly limits: Readonly<Record<'requestTimeout' | 'headersTimeout' | 'connectionsCheckingInterval' | 'keepAliveTimeout', number>>;
}

/** The client's certificate must verify (set on the socket by the SNI callback). */
type VerifyingSocket = TLSSocket & { _handle: { setVerifyMode(request: boolean, reject: boolean): void } | null; _requestCert: boolean; _rejectUnauthorized: boolean };

const NO_CERTIFICATE = new Error('no certificate for this server name');

export class TlsListeners {
  readonly servers: Server[] = [];
  private readonly sessions = new Set<Http2Session>();
  private fallbackEntry: SniEntry | undefined;

  constructor(private readonly env: TlsListenEnv) {
    const ssl = env.config.ssl;
    if (!ssl.enable) return;
    const base = tlsBaseOptions(ssl);
    for (const listen of ssl.listen) this.servers.push(this.create(listen, base));
  }

  get active(): boolean {
    return this.servers.length > 0;
  }

  private create(listen: SslListen, base: SecureContextOptions): Server {
    const env = this.env;
    const table = env.table;
    const SNICallback = function (this: TLSSocket, servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void {
      const entry = table().match(servername);
      if (entry === undefined) {
        cb(NO_CERTIFICATE);
        return;
      }
      setTlsState(this, { entry, servername: normalizeSni(servername) });
      if (entry.mtls !== undefined) askForCertificate(this, entry.mtls.skip === undefined);
      cb(null, entry.context);
    };
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      const socket = connectionOf(req);
      const state = socket === undefined ? undefined : tlsStateOf(socket);
      if (state?.entry.mtls !== undefined && !clientCertAccepted(req, socket!, state.entry, state.servername)) {
        sendError(res, ERRORS.clientCertRequired, { server: env.serverHeader });
        return;
      }
      env.handler(req, res);
    };
    const http2 = listen.enable_http2 ?? env.config.enable_http2;
    let server: Server;
    if (http2) {
      const options: SecureServerOptions = {
        ...base,
        SNICallback,
        // A handshake left unfinished holds a descriptor as a silent connection would: the same bound.
        handshakeTimeout: env.limits.headersTimeout,
        allowHTTP1: true,
        Http1ServerResponse: env.http1Response as typeof ServerResponse,
        Http2ServerResponse: env.http2Response as unknown as typeof Http2ServerResponse,
      };
      const h2 = createSecureServer(options, onRequest as unknown as (req: Http2ServerRequest, res: Http2ServerResponse) => void);
      // HTTP/1.1 on this listener: the same limits as the plain listener's (a slow upload is bounded by the upstream's timeouts).
      Object.assign(h2, env.limits);
      h2.on('session', (session: Http2Session) => {
        this.sessions.add(session);
        session.once('close', () => this.sessions.delete(session));
      });
      server = h2 as unknown as Server;
    } else {
      server = createHttpsServer({ ...base, SNICallback, handshakeTimeout: env.limits.headersTimeout, ServerResponse: env.http1Response as typeof ServerResponse, ...env.limits }, onRequest) as unknown as Server;
    }
    server.on('upgrade', env.upgrade);
    server.on('clientError', env.clientError);
    // Handshakes that fail (unknown SNI, no certificate, a client that gives up) are the client's problem, not an error here.
    server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
      env.logger.debug({ err: err.message, remote: socket.remoteAddress }, 'tls: handshake failed');
      socket.destroy();
    });
    // Before the HTTP layers see the connection: the checks only a finished handshake can make.
    server.prependListener('secureConnection', (socket: TLSSocket) => this.settled(socket));
    (server as Server & { [kListen]?: SslListen })[kListen] = listen;
    return server;
  }

  /** The handshake is done: fallback state, the object's own protocols, the CA chain depth. */
  private settled(socket: TLSSocket): void {
    let state = tlsStateOf(socket);
    if (state === undefined && this.fallbackEntry !== undefined) {
      state = { entry: this.fallbackEntry, servername: '' };
      setTlsState(socket, state);
    }
    if (state === undefined) return;
    const { protocols, mtls } = state.entry;
    if (protocols !== undefined && !protocols.has(socket.getProtocol() ?? '')) {
      socket.destroy();
      return;
    }
    if (mtls !== undefined && socket.authorized && verifiedChainLength(socket, mtls.cas) > mtls.depth + 1) {
      // Too deep for client.depth: refused as a failed verification is.
      if (mtls.skip === undefined) socket.destroy();
      else Object.assign(socket, { authorized: false, authorizationError: 'CERT_CHAIN_TOO_LONG' });
    }
  }

  /**
   * A new table: listeners answer clients without SNI with the fallback_sni
   * object's certificate (its context rebuilt only when that object changed).
   */
  refresh(table: SniTable): void {
    const fallback = this.env.config.ssl.fallback_sni;
    if (fallback === undefined || !this.active) return;
    const entry = table.match(fallback);
    if (entry === this.fallbackEntry) return;
    this.fallbackEntry = entry;
    for (const server of this.servers) {
      const s = server as unknown as { setSecureContext(o: object): void };
      // Without a match the default context goes back to having no certificate: such handshakes fail.
      s.setSecureContext(entry === undefined ? tlsBaseOptions(this.env.config.ssl) : entry.options);
    }
  }

  async listen(): Promise<AddressInfo[]> {
    const out: AddressInfo[] = [];
    for (const [i, server] of this.servers.entries()) {
      const { ip, port } = (server as Server & { [kListen]: SslListen })[kListen];
      await listenAs(`apisix.ssl.listen[${i}]`, ip, port, () =>
        new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: ip, port }, () => {
            server.off('error', reject);
            resolve();
          });
        }),
      );
      out.push(server.address() as AddressInfo);
    }
    return out;
  }

  /** Stops accepting; HTTP/2 sessions get GOAWAY, idle HTTP/1.1 connections close; `force` cuts the rest. */
  async close(drainMs: number): Promise<void> {
    const closing = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const session of this.sessions) session.close();
    for (const s of this.servers) (s as unknown as { closeIdleConnections?: () => void }).closeIdleConnections?.();
    const timer = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
      for (const s of this.servers) (s as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    }, drainMs);
    timer.unref();
    await Promise.all(closing);
    clearTimeout(timer);
  }
}

const kListen = Symbol('portico.sslListen');

function askForCertificate(socket: TLSSocket, reject: boolean): void {
  const s = socket as VerifyingSocket;
  s._requestCert = true;
  s._rejectUnauthorized = reject;
  s._handle?.setVerifyMode(true, reject);
}

/**
 * APISIX's verify_https_client (init.lua): with skip_mtls_uri_regex, a
 * request outside those paths needs a verified certificate; a verified
 * client must ask for the host its SNI named (a `*.domain` certificate must
 * not open another host of the domain).
 */
function clientCertAccepted(req: IncomingMessage, socket: TLSSocket, entry: SniEntry, servername: string): boolean {
  const skip = entry.mtls!.skip;
  if (skip !== undefined) {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (skip.some((re) => re.test(path))) return true;
  }
  if (!socket.authorized) return false;
  const host = hostOf((req.headers.host ?? req.headers[':authority']) as string | undefined);
  return servername === '' || host === servername;
}

