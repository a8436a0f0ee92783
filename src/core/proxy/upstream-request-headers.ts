/**
 * What the upstream receives as request headers, and why: the client's lines
 * as sent minus hop-by-hop ones (RFC 9110 section 7.6.1, and any name the
 * Connection header lists), then Host by `pass_host` and X-Forwarded-* /
 * X-Real-IP set by the gateway, never taken from the client unless its peer
 * is trusted. Used by the plain exchange (exchange.ts) and the WebSocket
 * proxy (websocket.ts), so both forward the same headers.
 */
import { connectionTokens, isHopByHop } from '../http/headers.js';
import type { RequestCtx } from '../http/request-context.js';
import type { UpstreamRuntime, UpstreamTarget } from '../upstream/types.js';

/**
 * Set here from the connection, never forwarded as the client sent them
 * (APISIX's nginx template sets Host, X-Real-IP and X-Forwarded-* with
 * proxy_set_header), so an upstream can believe them; Expect was answered here.
 */
const OWN = ['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip', 'expect'];
/**
 * Plus every underscored spelling of those names (`x_forwarded_for`, `x-real_ip`, ...), dropped.
 * Other headers with underscores pass unchanged, never renamed: APISIX ships
 * `underscores_in_headers on`, so it forwards them too, and `http_*` variables
 * read only the hyphenated name (vars.ts). But an upstream that folds `_` and
 * `-` together (CGI, WSGI, PHP: both become HTTP_X_FORWARDED_FOR) would let a
 * client's X_Forwarded_For pose as ours, so those spellings never leave here.
 * Listed up front, so the check is the same one set lookup as before.
 */
const REPLACED = new Set(OWN.flatMap(underscoreSpellings));

/** `a-b-c` → a-b-c, a_b-c, a-b_c, a_b_c. */
function underscoreSpellings(name: string): string[] {
  let out = [''];
  for (const ch of name) out = ch === '-' ? out.flatMap((p) => [p + '-', p + '_']) : out.map((p) => p + ch);
  return out;
}

/**
 * X-Forwarded-For: a trusted peer's chain (apisix.trusted_addresses) is kept
 * and the peer appended, as nginx's $proxy_add_x_forwarded_for; from anyone
 * else the header is the socket address alone, so a client cannot plant
 * addresses an upstream might believe.
 */
function forwardedFor(ctx: RequestCtx, prior: string | undefined, remote: string): string {
  if (prior === undefined) return remote;
  const info = ctx.socketInfo;
  // Trust is the socket peer's (apisix.trusted_addresses), not the address real-ip may have put in its place.
  const trusted = (info.trusted ??= ctx.snapshot.trustedPeer(info.remoteAddr));
  if (!trusted) return remote;
  return `${prior}, ${remote}`;
}

export function upstreamHeaders(ctx: RequestCtx, runtime: UpstreamRuntime, target: UpstreamTarget): string[] {
  const up = ctx.upstreamRequest;
  const edits = up.headers;
  const out: string[] = [];
  const drop = connectionTokens(ctx.connectionHeader);
  edits.flatten(out, drop, REPLACED);
  // Node parsed and de-chunked the body; undici re-frames it, so keep only a Content-Length that is true
  // (a body sent from memory gets undici's own, from its length).
  if (ctx.chunked || up.body !== undefined) {
    for (let i = 0; i < out.length; i += 2) if (out[i] === 'content-length') out.splice(i, 2), (i -= 2);
  }
  out.push('host', upstreamHost(ctx, runtime, target));
  const xff = edits.edited('x-forwarded-for') ? edits.get('x-forwarded-for') : undefined;
  const info = ctx.socketInfo;
  if (xff !== undefined) out.push('x-forwarded-for', xff);
  else out.push('x-forwarded-for', forwardedFor(ctx, ctx.forwardedForHeader, ctx.remoteAddr));
  pushOwn(ctx, out, 'x-forwarded-proto', info.proto);
  pushOwn(ctx, out, 'x-forwarded-host', ctx.host || (ctx.hostHeader ?? ''));
  pushOwn(ctx, out, 'x-forwarded-port', info.localPort);
  pushOwn(ctx, out, 'x-real-ip', ctx.remoteAddr);
  return out;
}

/**
 * upstreamHeaders() for a request no plugin edited: the client's header lines
 * as sent (names in their case, repeated lines kept, as nginx forwards them)
 * minus hop-by-hop and replaced ones, then ours. Walks rawHeaders, an array,
 * rather than for-in over the parsed headers object, whose keyed loads were
 * megamorphic in the profile; only names that could be dropped are lower-cased.
 */
export function clientUpstreamHeaders(ctx: RequestCtx, runtime: UpstreamRuntime, target: UpstreamTarget): string[] {
  const raw = ctx.req.rawHeaders;
  const out: string[] = [];
  const conn = ctx.connectionHeader;
  const drop = conn === undefined ? undefined : connectionTokens(conn);
  // Node parsed and de-chunked the body; undici re-frames it, so keep only a Content-Length that is true.
  const chunked = ctx.chunked;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (drop !== undefined || mayBeDropped(name)) {
      const lower = name.toLowerCase();
      if (REPLACED.has(lower) || isHopByHop(lower) || (drop !== undefined && drop.has(lower)) || (chunked && lower === 'content-length')) continue;
    }
    out.push(name, raw[i + 1]!);
  }
  const info = ctx.socketInfo;
  // real-ip may have replaced the socket's peer (ctx.setClientAddress).
  const remote = ctx.remoteAddr;
  out.push(
    'host',
    upstreamHost(ctx, runtime, target),
    'x-forwarded-for',
    forwardedFor(ctx, ctx.forwardedForHeader, remote),
    'x-forwarded-proto',
    info.proto,
    'x-forwarded-host',
    ctx.host || (ctx.hostHeader ?? ''),
    'x-forwarded-port',
    info.localPort,
    'x-real-ip',
    remote,
  );
  return out;
}

/**
 * Could `name` (any case) be one clientUpstreamHeaders drops? True for every
 * name in REPLACED, every hop-by-hop name, proxy-* and content-length, decided
 * on length and first letter, so common headers skip the lower-casing.
 */
function mayBeDropped(name: string): boolean {
  const first = name.charCodeAt(0) | 0x20;
  // p: proxy-*; ':' (0x3a, unchanged by | 0x20): HTTP/2 pseudo-headers.
  if (first === 0x70 /* p */ || first === 0x3a) return true;
  switch (name.length) {
    case 2: // te
      return first === 0x74;
    case 4: // host
      return first === 0x68;
    case 6: // expect
      return first === 0x65;
    case 7: // trailer, upgrade
      return first === 0x74 || first === 0x75;
    case 9: // x-real-ip
    case 15: // x-forwarded-for
    case 16: // x-forwarded-host, x-forwarded-port
      return first === 0x78;
    case 10: // connection, keep-alive
      return first === 0x63 || first === 0x6b;
    case 14: // content-length
      return first === 0x63;
    case 17: // x-forwarded-proto, transfer-encoding
      return first === 0x78 || first === 0x74;
    default:
      return false;
  }
}

/** Our value, unless a plugin set its own. */
function pushOwn(ctx: RequestCtx, out: string[], name: string, value: string): void {
  const edits = ctx.upstreamRequest.headers;
  if (edits.edited(name)) {
    const v = edits.get(name);
    if (v !== undefined) out.push(name, v);
    return;
  }
  out.push(name, value);
}

/** pass_host: `pass` keeps the client's Host (or a plugin's), `node` sends the node's address, `rewrite` sends upstream_host. */
export function upstreamHost(ctx: RequestCtx, runtime: UpstreamRuntime, target: UpstreamTarget): string {
  const conf = runtime.conf;
  const mode = conf.pass_host ?? 'pass';
  if (mode === 'rewrite' && conf.upstream_host) return conf.upstream_host;
  if (mode === 'node') {
    const https = conf.scheme === 'https' || conf.scheme === 'grpcs';
    return target.port === (https ? 443 : 80) ? target.host : target.key;
  }
  const up = ctx.peekUpstreamRequest();
  if (up !== undefined) {
    if (up.host !== undefined) return up.host;
    if (up.headers.edited('host')) return up.headers.get('host') ?? target.key;
  }
  return ctx.hostHeader ?? target.key;
}
