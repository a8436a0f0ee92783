/**
 * real-ip (APISIX priority 23000): replaces the client address with one a
 * trusted proxy passed on, in the rewrite phase (apisix/plugins/real-ip.lua),
 * so every later plugin, variable (`remote_addr`, `remote_port`), the
 * upstream's X-Real-IP / X-Forwarded-For and the logs see the real client.
 * `realip_remote_addr` keeps the socket's peer.
 *
 * `source` is a variable (`http_x_real_ip`, `arg_ip`, ...) or
 * `http_x_forwarded_for`, whose last address is taken, or with `recursive`
 * the rightmost one not in `trusted_addresses`. With `trusted_addresses`, only
 * requests whose peer is in the list are believed. A value that is not an
 * address (optionally with a port) is ignored, as APISIX does.
 *
 * Portico reads every X-Forwarded-For line joined (as Node joins repeats);
 * APISIX reads the last line only.
 */
import { isIP } from 'node:net';
import { compileIpMatcher, definePlugin, isValidIpOrCidr, type IpMatcher, type RequestContext } from '../core/plugin/index.js';

export const schema = {
  type: 'object',
  properties: {
    // Entries are checked one by one in check(), which names the bad address (APISIX's ip_def as a pattern list).
    trusted_addresses: { type: 'array', items: { type: 'string' }, minItems: 1 },
    source: { type: 'string', minLength: 1 },
    recursive: { type: 'boolean', default: false },
  },
  required: ['source'],
};

export interface RealIpConf {
  trusted_addresses?: string[];
  source: string;
  recursive?: boolean;
}

interface RealIpCompiled {
  readonly source: string;
  readonly fromForwardedFor: boolean;
  readonly recursive: boolean;
  readonly trusted: IpMatcher | undefined;
}

function check(conf: RealIpConf): string | undefined {
  for (const cidr of conf.trusted_addresses ?? []) {
    if (!isValidIpOrCidr(cidr)) return `invalid ip address: ${cidr}`;
  }
  return undefined;
}

function compile(conf: RealIpConf): RealIpCompiled {
  return {
    source: conf.source,
    fromForwardedFor: conf.source === 'http_x_forwarded_for',
    recursive: conf.recursive === true,
    trusted: conf.trusted_addresses ? compileIpMatcher(conf.trusted_addresses) : undefined,
  };
}

function forwardedAddr(conf: RealIpCompiled, ctx: RequestContext): string | undefined {
  const addrs = ctx.requestHeader('x-forwarded-for');
  if (addrs === undefined) return undefined;
  const comma = addrs.lastIndexOf(',');
  if (comma < 0) return addrs;
  if (conf.recursive && conf.trusted !== undefined) {
    const list = addrs.split(/,\s*/);
    for (let i = list.length - 1; i >= 1; i--) if (!conf.trusted(list[i]!)) return list[i];
    return list[0];
  }
  return addrs.slice(comma + 1).replace(/^ +/, '');
}

/** core.utils.parse_addr: `ip`, `ip:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address. */
function parseAddr(addr: string): { ip: string; port: number | undefined } | undefined {
  let ip = addr;
  let port: string | undefined;
  if (addr.startsWith('[')) {
    const close = addr.indexOf(']');
    if (close < 0) return undefined;
    ip = addr.slice(1, close);
    const rest = addr.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      port = rest.slice(1);
    }
  } else {
    const colon = addr.indexOf(':');
    if (colon >= 0 && colon === addr.lastIndexOf(':')) {
      ip = addr.slice(0, colon);
      port = addr.slice(colon + 1);
    }
  }
  if (isIP(ip) === 0) return undefined;
  if (port === undefined) return { ip, port: undefined };
  const n = /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (!(n >= 1 && n <= 65535)) return undefined;
  return { ip, port: n };
}

function rewrite(conf: RealIpCompiled, ctx: RequestContext): void {
  if (conf.trusted !== undefined && !conf.trusted(ctx.remoteAddr)) return;
  const addr = conf.fromForwardedFor ? forwardedAddr(conf, ctx) : ctx.var.get(conf.source);
  if (addr === undefined) return;
  const parsed = parseAddr(addr.trim());
  if (parsed === undefined) return;
  ctx.setClientAddress(parsed.ip, parsed.port);
}

export default definePlugin({
  name: 'real-ip',
  priority: 23000,
  version: '0.1',
  schema,
  check,
  compile,
  rewrite,
});
