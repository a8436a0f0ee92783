/**
 * Which host a request is for, decided once, so that routing (`hosts`),
 * plugins (`$host`) and the upstream's Host (pass_host "pass") all read the
 * same one and a client cannot show each a different host:
 * - more than one Host line is refused (RFC 9112 §3.2; nginx: "client sent duplicate host header");
 * - an absolute-form request-target's authority is the host, whatever Host says (RFC 9112 §3.2.2, as nginx);
 * - a Host nginx would refuse (`/`, `\`, `..`, an empty name, characters no authority has) is refused;
 * - a trailing dot is dropped (`b.example.` is `b.example`), as nginx's ngx_http_validate_host does.
 * The common request (origin-form target, one well-formed Host without a
 * trailing dot) gets its Host string back untouched, without allocating.
 */
import { ERRORS, type GatewayError } from '../errors.js';

/** The authority to route by and forward, undefined when the request names none (HTTP/1.0), or the error to answer. */
export type RequestHost = string | undefined | GatewayError;

/** Characters an authority may hold (RFC 3986 reg-name, IP literals, port), as a lookup by char code. */
const AUTHORITY_CHAR = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%:[]") AUTHORITY_CHAR[c.charCodeAt(0)] = 1;

const DOT = 0x2e;
const COLON = 0x3a;
const OPEN = 0x5b;
const CLOSE = 0x5d;

/**
 * `authority` checked and made canonical (trailing dot dropped), or undefined
 * when it is not one: empty name, a character outside AUTHORITY_CHAR, two
 * dots in a row, an unclosed IPv6 literal.
 */
export function canonicalAuthority(authority: string): string | undefined {
  const n = authority.length;
  let nameEnd = n; // where the port's colon is (or the end)
  let inLiteral = false;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const c = authority.charCodeAt(i);
    if (c >= 128 || AUTHORITY_CHAR[c] === 0) return undefined;
    if (c === OPEN) {
      if (i !== 0) return undefined;
      inLiteral = true;
    } else if (c === CLOSE) {
      if (!inLiteral) return undefined;
      inLiteral = false;
    } else if (c === COLON && !inLiteral && nameEnd === n) {
      nameEnd = i;
    } else if (c === DOT && prev === DOT && nameEnd === n) {
      return undefined;
    }
    prev = c;
  }
  if (inLiteral || nameEnd === 0) return undefined;
  if (authority.charCodeAt(nameEnd - 1) !== DOT) return authority;
  if (nameEnd === 1) return undefined;
  return authority.slice(0, nameEnd - 1) + authority.slice(nameEnd);
}

/** The authority of an absolute-form target (`http://host:port/path`); undefined for origin form. */
function targetAuthority(url: string): string | undefined {
  // Origin form (`/path`) and `*` are by far the most common: one char decides.
  const first = url.charCodeAt(0);
  if (first === 0x2f || first === 0x2a) return undefined;
  const sep = url.indexOf('://');
  if (sep < 0) return undefined;
  const start = sep + 3;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 0x2f || c === 0x3f || c === 0x23) break; // / ? #
    end++;
  }
  return url.slice(start, end);
}

/**
 * The request's host from its target and Host lines. `hostLine` is the first
 * Host value, `hostLines` how many Host lines came.
 */
export function requestHost(url: string, hostLine: string | undefined, hostLines: number): RequestHost {
  if (hostLines > 1) return ERRORS.duplicateHost;
  const authority = targetAuthority(url) ?? hostLine;
  if (authority === undefined) return undefined;
  return canonicalAuthority(authority) ?? ERRORS.invalidHost;
}
