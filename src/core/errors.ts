/**
 * One catalogue of the data plane's own responses, so every failure a client
 * can see has exactly one status and one body. Bodies follow APISIX's
 * `{"error_msg": ...}` shape followed by "\n" (core.response.exit with a table).
 */
import type { ServerResponse } from 'node:http';

export interface GatewayError {
  readonly status: number;
  /** Pre-encoded body: these are sent on hot failure paths, so encode once. */
  readonly body: Buffer;
}

function jsonError(status: number, message: string): GatewayError {
  return { status, body: Buffer.from(JSON.stringify({ error_msg: message }) + '\n') };
}

function emptyError(status: number): GatewayError {
  return { status, body: Buffer.alloc(0) };
}

export const ERRORS = {
  badPath: jsonError(400, 'invalid request path'),
  routeNotFound: jsonError(404, '404 Route Not Found'),
  // APISIX answers these three with an empty body (init.lua §5 steps 9, 10, 13).
  serviceNotFound: emptyError(404),
  pluginConfigNotFound: emptyError(503),
  consumerGroupNotFound: emptyError(503),
  missingUpstream: jsonError(503, 'missing upstream configuration in Route or Service'),
  upstreamNotFound: jsonError(502, 'failed to find upstream by id'),
  // APISIX: pick_server failure → 502 (notes §5 step 13.7).
  noHealthyNode: jsonError(502, 'no valid upstream node'),
  badGateway: jsonError(502, '502 Bad Gateway'),
  gatewayTimeout: jsonError(504, '504 Gateway Timeout'),
  internal: jsonError(500, '500 Internal Server Error'),
  unavailable: jsonError(503, '503 Service Unavailable'),
} as const satisfies Record<string, GatewayError>;

/** Writes a catalogue error unless headers already went out (then the socket is all we can end). */
export function sendError(res: ServerResponse, err: GatewayError, extraHeaders?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string | number> = { 'content-length': err.body.length };
  if (err.body.length > 0) headers['content-type'] = 'application/json';
  if (extraHeaders) Object.assign(headers, extraHeaders);
  res.writeHead(err.status, headers);
  res.end(err.body);
}

/** Encodes a plugin exit body the APISIX way: objects as JSON + "\n", strings and Buffers as they are. */
export function encodeBody(body: unknown): { data: Buffer | string; json: boolean } {
  if (body === undefined || body === null) return { data: '', json: false };
  if (typeof body === 'string') return { data: body, json: false };
  if (Buffer.isBuffer(body)) return { data: body, json: false };
  return { data: JSON.stringify(body) + '\n', json: true };
}
