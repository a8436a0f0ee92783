/**
 * What a TLS connection's handshake decided, kept on its socket for the
 * requests it carries (the mTLS check, `ssl_server_name`, `ssl_client_*`).
 */
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { SniEntry } from './sni-table.js';

export interface TlsState {
  readonly entry: SniEntry;
  /** The SNI the client sent ('' when it sent none and fallback_sni chose the certificate). */
  readonly servername: string;
}

const kTls = Symbol('portico.tls');
type StatefulSocket = TLSSocket & { [kTls]?: TlsState };

export function setTlsState(socket: TLSSocket, state: TlsState): void {
  (socket as StatefulSocket)[kTls] = state;
}

export function tlsStateOf(socket: TLSSocket): TlsState | undefined {
  return (socket as StatefulSocket)[kTls];
}

/**
 * The TLS socket under a request: an HTTP/2 request's `socket` is a proxy of
 * its session's, so the session's own socket is read instead.
 */
export function connectionOf(req: IncomingMessage | Http2ServerRequest): TLSSocket | undefined {
  const socket = req.httpVersionMajor === 2 ? (req as Http2ServerRequest).stream?.session?.socket : req.socket;
  return (socket as TLSSocket | undefined)?.encrypted === true ? (socket as TLSSocket) : undefined;
}

/**
 * nginx's `$ssl_client_verify`: SUCCESS, NONE (no certificate), or
 * FAILED:<reason>.
 */
export function clientVerify(socket: TLSSocket): string {
  if (socket.authorized) return 'SUCCESS';
  if (socket.getPeerX509Certificate() === undefined) return 'NONE';
  const err = socket.authorizationError as unknown as string | Error | null | undefined;
  return `FAILED:${err == null ? 'unknown' : typeof err === 'string' ? err : err.message}`;
}

/**
 * nginx's `$ssl_*` variables APISIX plugins read: ssl_server_name,
 * ssl_protocol, ssl_cipher, and the client certificate's ssl_client_verify,
 * ssl_client_s_dn / ssl_client_i_dn (RFC 2253 order, as nginx prints them),
 * ssl_client_serial, ssl_client_fingerprint (SHA-1), ssl_client_raw_cert.
 * Undefined off TLS, and the client ones without a client certificate.
 */
export function tlsVariable(req: IncomingMessage, name: string): string | undefined {
  const socket = connectionOf(req);
  if (socket === undefined) return undefined;
  switch (name) {
    case 'ssl_server_name':
      return tlsStateOf(socket)?.servername || undefined;
    case 'ssl_protocol':
      return socket.getProtocol() ?? undefined;
    case 'ssl_cipher':
      return socket.getCipher()?.standardName;
    case 'ssl_client_verify':
      return clientVerify(socket);
  }
  if (!name.startsWith('ssl_client_')) return undefined;
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return undefined;
  switch (name) {
    case 'ssl_client_s_dn':
      return rfc2253(cert.subject);
    case 'ssl_client_i_dn':
      return rfc2253(cert.issuer);
    case 'ssl_client_serial':
      return cert.serialNumber;
    case 'ssl_client_fingerprint':
      return cert.fingerprint.replace(/:/g, '').toLowerCase();
    case 'ssl_client_raw_cert':
      return cert.toString();
    default:
      return undefined;
  }
}

/** Node prints a DN one attribute per line, most significant first; RFC 2253 is comma-joined, least significant first. */
function rfc2253(dn: string): string {
  return dn.split('\n').reverse().join(',');
}
