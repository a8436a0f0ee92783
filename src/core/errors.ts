/**
 * One catalogue of the data plane's own responses, so every failure a client
 * can see has exactly one status and one body, under a stable code (the key,
 * also carried as `code` for logs and metrics). Bodies follow APISIX's
 * `{"error_msg": ...}` shape followed by "\n" (core.response.exit with a table).
 * The Admin API has its own catalogue (src/admin/errors.ts); pub/sub errors
 * travel inside ErrorResp frames (src/pubsub/kafka-errors.ts).
 */
import type { ServerResponse } from 'node:http';

export interface GatewayError {
  /** Stable name of the error: the key it has in ERRORS. */
  readonly code: string;
  readonly status: number;
  /** Pre-encoded body: these are sent on hot failure paths, so encode once. */
  readonly body: Buffer;
}

function jsonError(status: number, message: string): Omit<GatewayError, 'code'> {
  return { status, body: Buffer.from(JSON.stringify({ error_msg: message }) + '\n') };
}

function emptyError(status: number): Omit<GatewayError, 'code'> {
  return { status, body: Buffer.alloc(0) };
}

/** Stamps each entry with its key as its code. */
function catalogue<K extends string>(entries: Record<K, Omit<GatewayError, 'code'>>): { readonly [k in K]: GatewayError } {
  const out = {} as Record<K, GatewayError>;
  for (const code of Object.keys(entries) as K[]) out[code] = Object.freeze({ code, ...entries[code] });
  return out;
}

export const ERRORS = catalogue({
  badPath: jsonError(400, 'invalid request path'),
  // nginx's words for the two (ngx_http_process_host); see src/core/http/request-host.ts.
  duplicateHost: jsonError(400, 'client sent duplicate host header'),
  invalidHost: jsonError(400, 'client sent invalid host header'),
  // APISIX's access-phase mTLS check (init.lua verify_https_client) exits 400 with no body.
  clientCertRequired: emptyError(400),
  routeNotFound: jsonError(404, '404 Route Not Found'),
  // APISIX answers these three with an empty body (apisix/init.lua: a missing service, plugin config or consumer group).
  serviceNotFound: emptyError(404),
  pluginConfigNotFound: emptyError(503),
  consumerGroupNotFound: emptyError(503),
  missingUpstream: jsonError(503, 'missing upstream configuration in Route or Service'),
  upstreamNotFound: jsonError(502, 'failed to find upstream by id'),
  // APISIX: a pick_server failure in handle_upstream (apisix/init.lua) → 502.
  noHealthyNode: jsonError(502, 'no valid upstream node'),
  badGateway: jsonError(502, '502 Bad Gateway'),
  gatewayTimeout: jsonError(504, '504 Gateway Timeout'),
  internal: jsonError(500, '500 Internal Server Error'),
  unavailable: jsonError(503, '503 Service Unavailable'),
});

/**
 * A pub/sub route reached by a request that is not a WebSocket upgrade.
 * APISIX answers an empty 400; the body says what the client must do, keeping
 * APISIX's words for the cause.
 */
export function pubsubUpgradeRequired(cause: string): { readonly status: 400; readonly body: { error_msg: string } } {
  return { status: 400, body: { error_msg: `failed to initialize pubsub module: a WebSocket upgrade is required (${cause})` } };
}

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
