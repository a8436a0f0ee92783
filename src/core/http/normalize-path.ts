/**
 * Request-target normalisation: what nginx does to build `$uri`, which is what
 * APISIX routes on.
 *
 * Decisions (they match nginx with `merge_slashes on`, APISIX's default):
 * - The query (after the first `?`) is split off raw; a `#fragment` is dropped.
 * - The path is percent-decoded exactly once, so `%252e` stays the text `%2e`.
 *   `%2F` decodes to `/` and then *is* a separator, as in nginx's `$uri`: so
 *   `/public/..%2fadmin` normalises to `/admin` and is routed exactly as a
 *   literal `/admin` would be — never to a `/public/*` route while an upstream
 *   later resolves it to `/admin`. The proxy must forward the normalised path
 *   (re-encoded with `encodePath`), not the raw one.
 * - Dot segments are resolved after decoding (`/%2e%2e/` is `/../`). Going
 *   above the root is an error (nginx answers 400), never clamped silently.
 * - `//` collapses to `/`.
 * - Invalid escapes (`%zz`, a truncated `%4`), `%00`, and escapes that do not
 *   form UTF-8 are errors: the data plane answers 400.
 * - `;` is an ordinary character (nginx keeps `/admin;x` as is, so it does not
 *   match an exact `/admin` route). `\` is an ordinary character too.
 * - An absolute-form target (`http://host/p`) is reduced to its path.
 */

export type NormalizedPath = { path: string; query: string } | { error: string };

/** APISIX's optional URI rules (`apisix.delete_uri_tail_slash`, `apisix.normalize_uri_like_servlet`). */
export interface NormalizeOptions {
  /** Strip one trailing `/` (never from the root). */
  deleteUriTailSlash?: boolean;
  /**
   * Servlet (Tomcat) canonicalisation: strip `;params` from each segment, and
   * refuse what a servlet container would read differently from us: a dot
   * segment carrying parameters (`/..;/`), an empty segment with parameters,
   * or a still-encoded dot (`%2e`, from a double-encoded request).
   */
  likeServlet?: boolean;
}

const SLASH = 47;
const DOT = 46;
const PERCENT = 37;
const QUESTION = 63;
const HASH = 35;

/**
 * The data plane's per-request fast path: for a target whose path is already
 * normal (normalizePath would return it unchanged) and that has no fragment,
 * where the path ends (the index of its `?`, or its length); -1 when
 * normalizePath must run. Returns a number, so the common request allocates
 * no result object; the path and query are then plain slices of the target.
 */
export function plainPathEnd(rawUrl: string): number {
  const len = rawUrl.length;
  if (len === 0 || rawUrl.charCodeAt(0) !== SLASH) return -1;
  let i = 0;
  for (; i < len; i++) {
    const c = rawUrl.charCodeAt(i);
    if (c === QUESTION) break;
    if (c === PERCENT || c === HASH || c <= 32 || c >= 127) return -1;
    if (c === SLASH && i + 1 < len) {
      const n = rawUrl.charCodeAt(i + 1);
      if (n === SLASH || n === DOT) return -1;
    }
  }
  if (i < len && rawUrl.indexOf('#', i + 1) !== -1) return -1;
  return i;
}

/**
 * Splits and normalises a raw request target. Fast path: a path with no `%`,
 * `/.`, `//` or unusual byte is returned as the slice it already is.
 */
export function normalizePath(rawUrl: string, opts?: NormalizeOptions): NormalizedPath {
  const r = normalizeTarget(rawUrl);
  if (opts === undefined || 'error' in r) return r;
  const path = applyUriOptions(r.path, opts);
  if (typeof path !== 'string') return path;
  return path === r.path ? r : { path, query: r.query };
}

/** A request target as the router sees it, and the path the upstream receives. */
export type RoutedTarget = { path: string; query: string; upstreamPath: string } | { error: string };

/**
 * normalizePath, then APISIX's URI rules: `path` is what routes and plugins
 * see, `upstreamPath` the normalised path from before the rules, which APISIX
 * forwards (its `upstream_uri`), so `upstreamPath !== path` when a rule applied.
 */
export function normalizeForRouting(rawUrl: string, opts: NormalizeOptions | undefined): RoutedTarget {
  const r = normalizeTarget(rawUrl);
  if ('error' in r) return r;
  const path = opts === undefined ? r.path : applyUriOptions(r.path, opts);
  if (typeof path !== 'string') return path;
  return { path, query: r.query, upstreamPath: r.path };
}

/**
 * APISIX's optional URI rules over a path normalizePath already returned: the
 * path routes and plugins see. APISIX forwards the path from before these
 * rules to the upstream (a servlet upstream wants its `;jsessionid`), so the
 * data plane keeps both. Returns `path` itself when no rule changes it.
 *
 * One deliberate difference: APISIX's servlet rule starts again from the path
 * before the tail-slash rule, so with both on its trailing slash comes back;
 * here the two compose (`/foo/;x` and `/foo/` both route as `/foo`).
 */
export function applyUriOptions(path: string, opts: NormalizeOptions): string | { error: string } {
  if (opts.likeServlet && path.indexOf(';') !== -1) {
    const s = servletPath(path);
    if (typeof s !== 'string') return s;
    path = s;
  }
  if (opts.deleteUriTailSlash && path.length > 1 && path.charCodeAt(path.length - 1) === SLASH) {
    path = path.slice(0, -1);
  }
  return path;
}

/** APISIX's normalize_uri_like_servlet over an already normalised path. */
function servletPath(path: string): string | { error: string } {
  const segs = path.split('/');
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const semi = seg.indexOf(';');
    if (semi === -1) continue;
    const bare = seg.slice(0, semi);
    if (bare === '.' || bare === '..') return { error: 'dot segment with parameter' };
    if (bare === '' && i < segs.length - 1) return { error: 'empty segment with parameters' };
    const lower = bare.toLowerCase();
    if (lower === '%2e' || lower === '%2e%2e') return { error: 'encoded dot segment' };
    segs[i] = bare;
  }
  return segs.join('/');
}

function normalizeTarget(rawUrl: string): NormalizedPath {
  // A fragment never comes from a browser, but a raw client may send one.
  let end = rawUrl.indexOf('#');
  if (end === -1) end = rawUrl.length;
  let path: string;
  let query: string;
  const q = rawUrl.indexOf('?');
  if (q !== -1 && q < end) {
    path = rawUrl.slice(0, q);
    query = rawUrl.slice(q + 1, end);
  } else {
    path = end === rawUrl.length ? rawUrl : rawUrl.slice(0, end);
    query = '';
  }

  const len = path.length;
  if (len > 0 && path.charCodeAt(0) === SLASH) {
    let i = 0;
    for (; i < len; i++) {
      const c = path.charCodeAt(i);
      if (c === PERCENT || c <= 32 || c >= 127) break;
      if (c === SLASH && i + 1 < len) {
        const n = path.charCodeAt(i + 1);
        if (n === SLASH || n === DOT) break;
      }
    }
    if (i === len) return { path, query };
  }
  return slowPath(path, query);
}

function slowPath(path: string, query: string): NormalizedPath {
  if (path.charCodeAt(0) !== SLASH) {
    const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/.exec(path);
    if (!abs) return { error: 'invalid request target' };
    path = path.slice(abs[0].length) || '/';
  }

  const decoded = percentDecode(path);
  if (typeof decoded !== 'string') return decoded;
  return resolveSegments(decoded, query);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Decodes %XX once into UTF-8 bytes, then to a string; errors name what was wrong. */
function percentDecode(path: string): string | { error: string } {
  if (path.indexOf('%') === -1) return path;
  const bytes = Buffer.allocUnsafe(Buffer.byteLength(path, 'utf8'));
  let n = 0;
  let nonAscii = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === PERCENT) {
      const hi = i + 2 < path.length ? hexVal(path.charCodeAt(i + 1)) : -1;
      const lo = hi < 0 ? -1 : hexVal(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return { error: `invalid percent-encoding at offset ${i}` };
      const b = hi * 16 + lo;
      if (b === 0) return { error: 'encoded NUL in path' };
      if (b >= 128) nonAscii = true;
      bytes[n++] = b;
      i += 2;
    } else if (c < 128) {
      bytes[n++] = c;
    } else {
      // Only reachable when called with a Unicode string (Node's parser refuses raw 8-bit targets).
      nonAscii = true;
      const cp = path.codePointAt(i)!;
      if (cp > 0xffff) i++;
      n += bytes.write(String.fromCodePoint(cp), n, 'utf8');
    }
  }
  if (!nonAscii) return bytes.toString('latin1', 0, n);
  try {
    return utf8.decode(bytes.subarray(0, n));
  } catch {
    return { error: 'percent-encoded bytes are not valid UTF-8' };
  }
}

function resolveSegments(p: string, query: string): NormalizedPath {
  const parts = p.split('/');
  const out: string[] = [];
  let trailing = false;
  // parts[0] is the empty string before the leading slash.
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!;
    const last = i === parts.length - 1;
    if (seg === '' || seg === '.') {
      if (last) trailing = true;
      continue;
    }
    if (seg === '..') {
      if (out.length === 0) return { error: 'path escapes the root' };
      out.pop();
      if (last) trailing = true;
      continue;
    }
    out.push(seg);
    if (last) trailing = false;
  }
  if (out.length === 0) return { path: '/', query };
  return { path: '/' + out.join('/') + (trailing ? '/' : ''), query };
}

// RFC 3986 pchar plus `/`: what may appear unescaped in a path sent upstream.
const PATH_SAFE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;

/**
 * Re-encodes a normalised (decoded) path for the upstream request line: `%`,
 * `?`, `#`, spaces, controls and non-ASCII are escaped, so what the upstream
 * parses is the same path the router saw.
 */
export function encodePath(path: string): string {
  if (PATH_SAFE.test(path)) return path;
  let out = '';
  for (const ch of path) {
    out += PATH_SAFE.test(ch) ? ch : encodeURIComponent(ch);
  }
  return out;
}
