/**
 * WebSocket proxying for routes with enable_websocket: after the pipeline let
 * the request through, open a connection to the picked node, replay the
 * upgrade request, and splice the two sockets. The upstream's handshake
 * answer (101 or a refusal) reaches the client byte for byte. An error on
 * either side closes both.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ERRORS, type GatewayError } from './errors.js';
import { encodePath } from './normalize-path.js';
import { upstreamHeaders } from './proxy.js';
import type { RequestCtx } from './request-context.js';
import type { UpstreamRuntime, UpstreamTarget } from './upstream/types.js';

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
  const upstream: Socket = secure
    ? tlsConnect({ host, port: target.port, servername: host, rejectUnauthorized: conf.tls?.verify === true })
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
    if (head.length > 0) upstream.write(head);
    upstream.pipe(client);
    client.pipe(upstream);
  });

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
