/**
 * Which header names the authorization request may carry from elsewhere.
 * The request is built fresh: its framing is undici's (from the body it
 * sends), its X-Forwarded-* are the gateway's. A client's Content-Length or
 * Transfer-Encoding passed along would frame a body other than the one sent
 * (APISIX's CVE-2024-32638, request smuggling into the auth service), and a
 * client's X-Forwarded-* would speak for the gateway.
 */

/** Set by the gateway from the connection; never copied from the client. */
export const FORWARDED = ['x-forwarded-proto', 'x-forwarded-method', 'x-forwarded-host', 'x-forwarded-uri', 'x-forwarded-for'] as const;

/** Framing and connection headers: the HTTP client sets them for the request it sends. */
const FRAMING = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'expect', 'proxy-connection']);

/** `X_Forwarded_For` is `x-forwarded-for` to a server that folds `_` into `-` (CGI, WSGI, PHP). */
function folded(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

/** Why `name` may not be copied from the client (request_headers), or undefined when it may. */
export function clientHeaderRefusal(name: string): string | undefined {
  const n = folded(name);
  if (FRAMING.has(n)) return `"${name}" frames the authorization request, which the gateway does`;
  if ((FORWARDED as readonly string[]).includes(n)) return `"${name}" is set by the gateway, never taken from the client`;
  if (n === 'content-encoding') return `"${name}" is sent with a POST body by the gateway`;
  return undefined;
}

/** Why `name` may not be set by extra_headers, or undefined when it may (X-Forwarded-* may be, as in APISIX). */
export function extraHeaderRefusal(name: string): string | undefined {
  const n = folded(name);
  return FRAMING.has(n) ? `"${name}" frames the authorization request, which the gateway does` : undefined;
}

/** A value a variable filled in: only what a header line may hold (no CR, LF or NUL). */
export function isHeaderValue(v: string): boolean {
  return !/[\0-\x08\x0a-\x1f\x7f]/.test(v);
}
