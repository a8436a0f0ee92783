/**
 * Admin token check (APISIX's check_token): the key comes from the `api_key`
 * query argument, then the X-API-KEY header, then the X-API-KEY cookie, and a
 * viewer key may only read. Keys are compared through fixed-length digests so
 * the comparison time says nothing about how much of a key matched.
 *
 * Unlike APISIX, the cookie counts only on a request that shows no sign of
 * coming from another origin: a browser attaches cookies to requests any page
 * starts, so a page elsewhere could otherwise write through a logged-in
 * browser. A header or query key is not attached by a browser on its own, so
 * it is taken whatever the Origin.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { AdminKey } from '../core/config/types.js';

export type AdminRole = 'admin' | 'viewer';

export type AuthResult = { ok: true; role: AdminRole } | { ok: false; reason: string };

export interface AuthInput {
  method: string;
  /** Raw query string, without '?'. */
  query: string;
  headers: IncomingHttpHeaders;
}

export type Authenticate = (input: AuthInput) => AuthResult;

const BYPASS: AuthResult = { ok: true, role: 'admin' };

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function tokenFromQuery(query: string): string | undefined {
  if (query === '') return undefined;
  const value = new URLSearchParams(query).get('api_key');
  return value === null ? undefined : value;
}

function tokenFromCookie(cookie: string | undefined): string | undefined {
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim().toLowerCase() === 'x-api-key') {
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return undefined;
}

/**
 * No sign of another origin: an Origin header, if sent, names the origin the
 * request was sent to (scheme and Host), and Sec-Fetch-Site, if sent, says
 * same-origin or none (typed in the address bar). Tools such as curl send
 * neither; browsers send Origin on every cross-origin request that can write.
 */
function sameOrigin(headers: IncomingHttpHeaders): boolean {
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = headers.origin;
  if (origin === undefined) return true;
  const host = headers.host;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

const CROSS_ORIGIN_COOKIE = 'the X-API-KEY cookie is not accepted on a cross-origin request';

/** The key, undefined when none came, or null when the only one is a cookie on a cross-origin request. */
function tokenFrom(input: AuthInput): string | undefined | null {
  const fromQuery = tokenFromQuery(input.query);
  if (fromQuery !== undefined) return fromQuery;
  const header = input.headers['x-api-key'];
  if (header !== undefined) return Array.isArray(header) ? header[0] : header;
  const fromCookie = tokenFromCookie(input.headers.cookie);
  if (fromCookie === undefined) return undefined;
  return sameOrigin(input.headers) ? fromCookie : null;
}

export function compileAuth(required: boolean, keys: readonly AdminKey[]): Authenticate {
  if (!required) return () => BYPASS;
  // Keys left empty are never matched: an empty token must not open the API.
  const known = keys.filter((k) => typeof k.key === 'string' && k.key !== '').map((k) => ({ role: k.role, digest: digest(k.key) }));
  return (input) => {
    const token = tokenFrom(input);
    if (token === null) return { ok: false, reason: CROSS_ORIGIN_COOKIE };
    if (token === undefined || token === '') return { ok: false, reason: 'missing apikey' };
    const d = digest(token);
    let role: AdminRole | undefined;
    // Compare with every key, without stopping early, so timing does not reveal which one matched.
    for (const k of known) if (timingSafeEqual(k.digest, d) && role === undefined) role = k.role;
    if (role === undefined) return { ok: false, reason: 'wrong apikey' };
    if (role === 'viewer' && input.method !== 'GET') return { ok: false, reason: 'invalid method for role viewer' };
    return { ok: true, role };
  };
}
