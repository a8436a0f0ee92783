/**
 * What a connection may cost before it sends a request: nginx's
 * client_header_timeout and worker_connections, in node:http's terms.
 *
 * Node derives headersTimeout from requestTimeout (the smaller of 60 s and
 * it), so the data plane's `requestTimeout: 0` (a slow upload is bounded by
 * the upstream's timeouts, not a wall clock) silently turned the head's
 * timeout off too: a connection that sent nothing was held for ever. It is set
 * on its own here. Node checks it on an interval (30 s by default), so the
 * interval follows the timeout: a connection is closed between 1 and 1.5 times
 * the timeout after it opened or its last request ended.
 */
import type { Server } from 'node:net';
import type { Logger } from 'pino';
import type { PorticoConfig } from '../config/types.js';
import { nginxTimeMs } from '../config/nginx-time.js';

export interface HttpServerLimits {
  readonly requestTimeout: 0;
  readonly headersTimeout: number;
  readonly connectionsCheckingInterval: number;
  readonly keepAliveTimeout: number;
}

/** The options every HTTP/1.1 listener of the data plane is created with. */
export function httpServerLimits(config: PorticoConfig): HttpServerLimits {
  const headersTimeout = nginxTimeMs(config.nginx_config.http.client_header_timeout);
  return {
    requestTimeout: 0,
    headersTimeout,
    connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(headersTimeout / 2))),
    keepAliveTimeout: 60_000,
  };
}

/** Between two log lines about refused connections, so a flood is one line every few seconds, not one per connection. */
const DROP_LOG_EVERY_MS = 10_000;

/**
 * Caps the connections `server` holds at once (nginx's worker_connections, per
 * listener of this process): node:net closes any connection beyond it as it is
 * accepted, so a flood of idle sockets costs a bounded number of descriptors.
 */
export function capConnections(server: Server, config: PorticoConfig, logger: Logger, listener: string): void {
  const max = config.nginx_config.event.worker_connections;
  server.maxConnections = max;
  let dropped = 0;
  let lastLog = 0;
  server.on('drop', () => {
    dropped++;
    const now = Date.now();
    if (now - lastLog < DROP_LOG_EVERY_MS) return;
    lastLog = now;
    logger.warn(
      { listener, limit: max, dropped },
      `connection limit reached: ${listener} holds ${max} connections (nginx_config.event.worker_connections); closing new ones`,
    );
    dropped = 0;
  });
}
