/**
 * Lazy request variables (APISIX `ctx.var`). Built for every request, read by
 * few: the constructor only keeps a reference, and each variable is computed
 * on first read. The query string and the Cookie header are parsed once, on
 * the first `arg_*` / `cookie_*` read.
 *
 * Semantics follow APISIX's core/ctx.lua over nginx variables:
 * - `arg_<name>`: first value of the query argument, decoded as nginx does
 *   (query.ts), name case-sensitive; a bare `?a` reads as ''.
 * - `http_<name>`: request header, name lower-cased with `_` standing for `-`;
 *   repeated headers are joined with `, ` (as Node and recent nginx do).
 * - `cookie_<name>`: raw cookie value, first occurrence wins.
 * - `route_id`, `route_name`, `service_id`, `service_name`, `consumer_name`,
 *   `consumer_group_id`: read from the source when known, undefined before.
 * - `uri_param_<name>`: a parameter captured by the matched route's path.
 * Unknown names read as undefined. `set()` overrides or adds a variable for the
 * rest of the request (as assigning `ctx.var.x` does in APISIX).
 */
import type { IncomingMessage } from 'node:http';
import { hostname as osHostname } from 'node:os';
import type { TLSSocket } from 'node:tls';
import type { Vars } from '../plugin/ctx.js';
import type { Id } from '../model.js';
import { unmapIPv4 } from '../match/ip-match.js';
import { encodePath } from './normalize-path.js';
import { parseQuery } from './query.js';
import { tlsVariable } from '../tls/connection.js';

/**
 * What the variables are computed from. `RequestContext` satisfies it; the data
 * plane may also pass a partly filled object and fill `route`/`service`/
 * `consumer`/`params` as they become known, since fields are read on demand.
 */
export interface VarsSource {
  readonly req: IncomingMessage;
  readonly method: string;
  /** Normalised, decoded path (`$uri`). */
  readonly path: string;
  /** Raw query without `?`. */
  readonly query: string;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly host: string;
  readonly route?: { readonly id?: Id; readonly name?: string };
  readonly service?: { readonly id?: Id; readonly name?: string };
  readonly consumer?: { readonly username?: string; readonly group_id?: Id };
  readonly upstream?: { readonly scheme?: string };
  readonly upstreamRequest?: { readonly path: string; readonly query: string; readonly host?: string };
  /** The node of the current proxy attempt (`upstream_addr`, `balancer_ip`, `balancer_port`). */
  readonly target?: { readonly key: string; readonly host: string; readonly port: number };
  /** Parameters captured by the router (`uri_param_<name>`). */
  readonly params?: Readonly<Record<string, string>>;
}

let cachedHostname: string | undefined;

export class LazyVars implements Vars {
  private readonly src: VarsSource;
  private overrides: Map<string, string> | undefined;
  private args: Map<string, string> | undefined;
  private cookies: Map<string, string> | undefined;

  constructor(src: VarsSource) {
    this.src = src;
  }

  set(name: string, value: string | undefined): void {
    if (value === undefined) {
      this.overrides?.delete(name);
      return;
    }
    (this.overrides ??= new Map()).set(name, value);
  }

  get(name: string): string | undefined {
    if (this.overrides !== undefined) {
      const v = this.overrides.get(name);
      if (v !== undefined) return v;
    }
    const src = this.src;
    switch (name) {
      case 'uri':
      case 'document_uri':
        return src.path;
      case 'request_uri':
        return src.req.url;
      case 'host':
        return src.host;
      case 'hostname':
        return (cachedHostname ??= osHostname());
      case 'remote_addr':
        return src.remoteAddr;
      case 'remote_port':
        return String(src.remotePort);
      // The socket's peer, whatever real-ip made of remote_addr (nginx's realip module names it so).
      case 'realip_remote_addr': {
        const a = src.req.socket?.remoteAddress;
        return a === undefined ? undefined : unmapIPv4(a);
      }
      case 'realip_remote_port': {
        const p = src.req.socket?.remotePort;
        return p === undefined ? undefined : String(p);
      }
      // An aborted upload's request has no socket any more (undici detaches it before destroying the body).
      case 'server_addr': {
        const a = src.req.socket?.localAddress;
        return a === undefined ? undefined : unmapIPv4(a);
      }
      case 'server_port': {
        const p = src.req.socket?.localPort;
        return p === undefined ? undefined : String(p);
      }
      case 'request_method':
        return src.method;
      case 'scheme':
        return (src.req.socket as TLSSocket | null)?.encrypted ? 'https' : 'http';
      case 'https':
        return (src.req.socket as TLSSocket | null)?.encrypted ? 'on' : '';
      case 'server_protocol':
        return `HTTP/${src.req.httpVersion}`;
      case 'query_string':
      case 'args':
        return src.query;
      case 'is_args':
        return src.query === '' ? '' : '?';
      case 'content_type':
        return headerValue(src.req, 'content-type');
      case 'content_length':
        return headerValue(src.req, 'content-length');
      case 'request_line':
        return `${src.method} ${src.req.url ?? ''} HTTP/${src.req.httpVersion}`;
      case 'msec':
        return (Date.now() / 1000).toFixed(3);
      case 'time_iso8601':
        return nginxTime(new Date(), true);
      case 'time_local':
        return nginxTime(new Date(), false);
      case 'route_id':
        return idString(src.route?.id);
      case 'route_name':
        return src.route?.name;
      case 'service_id':
        return idString(src.service?.id);
      case 'service_name':
        return src.service?.name;
      case 'consumer_name':
        return src.consumer?.username;
      case 'consumer_group_id':
        return idString(src.consumer?.group_id);
      case 'upstream_scheme':
        return src.upstream?.scheme;
      case 'upstream_uri': {
        const u = src.upstreamRequest;
        if (u === undefined) return undefined;
        const p = encodePath(u.path);
        return u.query === '' ? p : `${p}?${u.query}`;
      }
      case 'upstream_host':
        return src.upstreamRequest?.host;
      case 'upstream_addr':
        return src.target?.key;
      case 'balancer_ip':
        return src.target?.host;
      case 'balancer_port':
        return src.target === undefined ? undefined : String(src.target.port);
    }
    if (name.startsWith('arg_')) return this.arg(name.slice(4));
    if (name.startsWith('http_')) return headerValue(src.req, headerNameOf(name));
    if (name.startsWith('cookie_')) return this.cookie(name.slice(7));
    // Own properties only: `uri_param_constructor` is no parameter, not Object.prototype's member.
    if (name.startsWith('uri_param_')) return src.params !== undefined && Object.hasOwn(src.params, name.slice(10)) ? src.params[name.slice(10)] : undefined;
    if (name.startsWith('ssl_')) return tlsVariable(src.req, name);
    return undefined;
  }

  private arg(key: string): string | undefined {
    if (this.args === undefined) this.args = parseQuery(this.src.query);
    return this.args.get(key);
  }

  private cookie(key: string): string | undefined {
    if (this.cookies === undefined) this.cookies = parseCookies(headerValue(this.src.req, 'cookie'));
    return this.cookies.get(key);
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number) => (n < 10 ? `0${n}` : String(n));

/** nginx's `$time_iso8601` (`2024-05-01T12:34:56+02:00`) or `$time_local` (`01/May/2024:12:34:56 +0200`). */
export function nginxTime(d: Date, iso: boolean): string {
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const oh = pad(Math.floor(Math.abs(off) / 60));
  const om = pad(Math.abs(off) % 60);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (iso) return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${time}${sign}${oh}:${om}`;
  return `${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${time} ${sign}${oh}${om}`;
}

function idString(id: Id | undefined): string | undefined {
  return id === undefined ? undefined : String(id);
}

function headerNameOf(varName: string): string {
  // Node already lower-cases header names; the variable may be written in any case.
  return varName.slice(5).toLowerCase().replace(/_/g, '-');
}

/** A request header as Node parsed it; repeats joined with ", ". */
export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(', ');
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const key = part.slice(0, eq).trim();
    if (key !== '' && !out.has(key)) out.set(key, part.slice(eq + 1).trim());
  }
  return out;
}
