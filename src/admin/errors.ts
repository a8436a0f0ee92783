/**
 * The Admin API's error catalogue. Every error an Admin API client can see has
 * a stable code, and the code decides the status, here and nowhere else.
 * Bodies are the exact ones APISIX sends (an object as JSON + "\n", a string
 * as plain text). Handlers throw AdminError; the server's error handler turns
 * whatever was thrown into one with toAdminError and is the only place that
 * writes it out (sendAdminError).
 */
import type { FastifyError, FastifyReply } from 'fastify';
import { CompareFailedError, StoreOutcomeUnknownError, StoreUnavailableError } from '../core/store/types.js';

export const ADMIN_ERROR_STATUS = {
  /** Bad input (body, id, query argument, path): the message names what is wrong. */
  ADMIN_INVALID: 400,
  /** No admin key, or a wrong one (APISIX: `failed to check token`). */
  ADMIN_UNAUTHORIZED: 401,
  /** The client's address is not in `deployment.admin.allow_admin`. */
  ADMIN_FORBIDDEN: 403,
  /** No such resource type, item, plugin or endpoint. */
  ADMIN_NOT_FOUND: 404,
  ADMIN_METHOD_NOT_ALLOWED: 405,
  /** A body under a content type other than JSON, none, or curl -d's form type (src/admin/body.ts). */
  ADMIN_UNSUPPORTED_MEDIA_TYPE: 415,
  /** The item changed between our read and our write (the store's compare failed), as APISIX answers it. */
  ADMIN_WRITE_CONFLICT: 503,
  /** The config store cannot be reached or written: nothing was changed, and nothing will be. */
  ADMIN_STORE_UNAVAILABLE: 503,
  /** A write went unanswered and its outcome could not be learned in time: it may have been applied (the message names the key). */
  ADMIN_STORE_OUTCOME_UNKNOWN: 504,
  ADMIN_INTERNAL: 500,
} as const;

export type AdminErrorCode = keyof typeof ADMIN_ERROR_STATUS;

export class AdminError extends Error {
  readonly status: number;

  /**
   * @param status only for a request fastify itself refused (`ADMIN_INVALID`
   *   with fastify's own 4xx, e.g. 413 or 415); every other error takes its
   *   code's status.
   */
  constructor(
    readonly code: AdminErrorCode,
    readonly body: Record<string, unknown> | string,
    status?: number,
  ) {
    super(typeof body === 'string' ? body : String(body.error_msg ?? body.message ?? 'admin error'));
    this.name = 'AdminError';
    this.status = status ?? ADMIN_ERROR_STATUS[code];
  }
}

/** `{"error_msg": msg}` with the status of `code` (bad input unless told). */
export function adminError(msg: string, code: AdminErrorCode = 'ADMIN_INVALID'): AdminError {
  return new AdminError(code, { error_msg: msg });
}

/** etcd's answer for a missing key, which APISIX passes through unchanged. */
export function keyNotFound(): AdminError {
  return new AdminError('ADMIN_NOT_FOUND', { message: 'Key not found' });
}

/** What the client receives for anything a handler, the store or fastify threw; `fault`: a failure of ours or the store's, worth logging. */
export function toAdminError(err: unknown): { error: AdminError; fault: boolean } {
  if (err instanceof AdminError) return { error: err, fault: false };
  if (err instanceof CompareFailedError) return { error: adminError('value changed before overwritten', 'ADMIN_WRITE_CONFLICT'), fault: false };
  if (err instanceof StoreOutcomeUnknownError) return { error: adminError(err.message, 'ADMIN_STORE_OUTCOME_UNKNOWN'), fault: true };
  if (err instanceof StoreUnavailableError) return { error: adminError(err.message, 'ADMIN_STORE_UNAVAILABLE'), fault: true };
  const status = (err as FastifyError).statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return { error: new AdminError('ADMIN_INVALID', { error_msg: (err as Error).message }, status), fault: false };
  }
  return { error: adminError('internal server error', 'ADMIN_INTERNAL'), fault: true };
}

/** Writes an AdminError: a string body as text/plain, an object through the JSON serializer. */
export function sendAdminError(reply: FastifyReply, err: AdminError): FastifyReply {
  reply.code(err.status);
  if (typeof err.body === 'string') reply.type('text/plain');
  return reply.send(err.body);
}
