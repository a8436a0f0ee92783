/**
 * The Admin API's one error type: a status and the exact body APISIX sends
 * (an object is sent as JSON + "\n", a string as plain text). Handlers throw
 * it; the server's error handler is the only place that writes it out.
 */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown> | string,
  ) {
    super(typeof body === 'string' ? body : String(body.error_msg ?? body.message ?? 'admin error'));
    this.name = 'AdminError';
  }
}

/** `{"error_msg": msg}` with `status` (400 unless told). */
export function adminError(msg: string, status = 400): AdminError {
  return new AdminError(status, { error_msg: msg });
}

/** etcd's answer for a missing key, which APISIX passes through unchanged. */
export function keyNotFound(): AdminError {
  return new AdminError(404, { message: 'Key not found' });
}
