/**
 * WebSocket proxying for routes with enable_websocket: after the pipeline let
 * the request through, open a connection to the picked node, replay the
 * upgrade request, and splice the two sockets. The upstream's handshake
 * answer (101 or a refusal) reaches the client byte for byte, but client bytes
 * reach the upstream only after a 101: before that they would be raw HTTP on a
 * connection the upstream still parses, a request that skipped routing and
 * plugins (the WebSocket-tunnel smuggling pattern; nginx also waits for 101).
 * An error on either side closes both.
 *
 * TLS to an https upstream verifies the certificate unless tls.verify is
 * false, as the HTTP pools do (src/core/upstream/pool.ts).
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ERRORS, type GatewayError } from '../errors.js';
import { encodePath } from '../http/normalize-path.js';
import { upstreamHeaders } from './upstream-request-headers.js';
import type { RequestCtx } from '../http/request-context.js';
import type { UpstreamRuntime, UpstreamTarget } from '../upstream/types.js';

/** An upstream's answer to the upgrade request must fit in this before its end is seen. */
const MAX_HANDSHAKE_BYTES = 16 * 1024;

/** Writes a catalogue error on a raw socket that was never upgraded. */
export function writeRawError(socket: Duplex, err: GatewayError): void {
  if (socket.destroyed) return;
  socket.write(
    `HTTP/1.1 ${err.status} ${err.status === 504 ? 'Gateway Timeout' : err.status === 502 ? 'Bad Gateway' : 'Error'}\r\n` +
      `content-type: application/json\r\ncontent-length: ${err.body.length}\r\nconnection: close\r\n\r\n`,
  );
  socket.end(err.body);
}

export function proxyWebSocket(
  ctx: RequestCtx,
  runtime: UpstreamRuntime,
  target: UpstreamTarget,
  client: Duplex,
  head: Buffer,
  logger: Logger,
  done: () => void,
): void {
  const conf = runtime.conf;
  const secure = conf.scheme === 'https';
  const timeoutMs = (ctx.compiled?.timeout?.connect ?? conf.timeout?.connect ?? 60) * 1000;
  const host = target.host.startsWith('[') ? target.host.slice(1, -1) : target.host;
  const tls = conf.tls;
  const upstream: Socket = secure
    ? tlsConnect({
        host,
        port: target.port,
        servername: isIP(host) === 0 ? host : undefined,
        rejectUnauthorized: tls?.verify !== false,
        cert: tls?.client_cert,
        key: tls?.client_key,
      })
    : netConnect({ host, port: target.port });
  const started = performance.now();
  let connected = false;
  let closed = false;

  const finish = (failure?: 'connect' | 'timeout' | 'reset') => {
    if (closed) return;
    closed = true;
    if (failure) runtime.report(target, { failure });
    runtime.release(target);
    upstream.destroy();
    // After an error answer the client socket is ending by itself; cutting it now would lose the answer.
    if (!failure) client.destroy();
    done();
  };

  upstream.setTimeout(timeoutMs, () => {
    if (connected) return;
    logger.warn({ upstream: target.key }, 'websocket proxy: connect timeout');
    writeRawError(client, ERRORS.gatewayTimeout);
    finish('timeout');
  });

  upstream.once(secure ? 'secureConnect' : 'connect', () => {
    connected = true;
    upstream.setTimeout(0);
    runtime.report(target, { status: 101, latencyMs: performance.now() - started });
    const up = ctx.upstreamRequest;
    const headers = upstreamHeaders(ctx, runtime, target);
    // Upgrade and Connection are hop-by-hop, stripped above; a WebSocket handshake needs them back.
    headers.push('connection', 'upgrade', 'upgrade', String(ctx.req.headers.upgrade ?? 'websocket'));
    let text = `${up.method} ${encodePath(up.path)}${up.query === '' ? '' : '?' + up.query} HTTP/1.1\r\n`;
    for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    upstream.write(text + '\r\n');
    awaitHandshake();
  });

  /** Relays the upstream's answer; only a 101 opens the client-to-upstream direction. */
  const awaitHandshake = () => {
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) {
        if (seen.length > MAX_HANDSHAKE_BYTES) {
          upstream.off('data', onData);
          logger.warn({ upstream: target.key }, 'websocket proxy: upstream handshake answer too large');
          writeRawError(client, ERRORS.badGateway);
          finish('reset');
        }
        return;
      }
      upstream.off('data', onData);
      const switched = /^HTTP\/1\.[01] 101[ \r]/.test(seen.toString('latin1', 0, Math.min(end, 32)));
      client.write(seen);
      if (switched) {
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      } else {
        // A refusal: the client gets the answer, the upstream never gets another byte from this client.
        upstream.pipe(client);
        upstream.once('end', () => client.end());
      }
    };
    upstream.on('data', onData);
  };

  upstream.on('error', (err: Error & { code?: string }) => {
    if (!connected) {
      logger.warn({ upstream: target.key, err: err.message }, 'websocket proxy: upstream connect failed');
      writeRawError(client, ERRORS.badGateway);
      finish('connect');
      return;
    }
    finish();
  });
  upstream.on('close', () => finish());
  client.on('error', () => finish());
  client.on('close', () => finish());
}
