/**
 * The Admin API's checks on an upstream beyond its schema
 * (apisix/upstream.lua check_upstream_conf), in APISIX's order.
 */
import { isIPv6 } from 'node:net';
import { nodeAddrError, splitNodeAddr } from './node-addr.js';
import { CHASH_KEY_PATTERNS } from './upstream.js';
import { luaQuote } from './validation-messages.js';
import { validateCertKey } from './pem.js';
import type { CompiledSchema } from './compile.js';

type Obj = Record<string, unknown>;

/** Looks up a stored SSL object's value; undefined when there is none. */
export type SslLookup = (id: string) => Promise<Obj | undefined>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The port of a `host[:port]` key, as core.utils.parse_addr reads it; undefined when none (or not a number). */
export function portOfAddr(addr: string): number | undefined {
  const { portText } = splitNodeAddr(addr);
  if (portText === undefined || portText === '') return undefined;
  const n = Number(portText);
  return Number.isFinite(n) ? n : undefined;
}

const chashKeyRegex = new Map<string, { pattern: string; re: RegExp }>();
for (const [hashOn, pattern] of Object.entries(CHASH_KEY_PATTERNS)) {
  if (pattern) chashKeyRegex.set(hashOn, { pattern, re: new RegExp(pattern) });
}

/**
 * The hash form's `host[:port]` keys, after the schema passed. APISIX checks only the port's range; the host and
 * the port's form are checked too, so that a key the data plane cannot turn into a node (`a/b:80`, `host:80x`,
 * `__proto__`) is refused now, not dropped later. Synchronous, for upstreams inside plugin confs (traffic-split).
 */
export function checkNodeKeys(conf: Obj): string | undefined {
  if (!isObject(conf.nodes)) return undefined;
  for (const addr of Object.keys(conf.nodes)) {
    const port = portOfAddr(addr);
    if (port !== undefined && (port < 1 || port > 65535)) return `invalid port ${port}`;
    const err = nodeAddrError(addr);
    if (err) return `invalid configuration: ${err}`;
  }
  return undefined;
}

export async function checkUpstream(
  conf: Obj,
  schema: CompiledSchema,
  ssl: SslLookup,
): Promise<string | undefined> {
  // Before the schema, as APISIX: an unbracketed IPv6 host makes "host:port" ambiguous.
  if (Array.isArray(conf.nodes)) {
    for (const node of conf.nodes) {
      const host = isObject(node) ? node.host : undefined;
      if (typeof host === 'string' && !host.startsWith('[') && isIPv6(host)) {
        return "invalid configuration: IPv6 address must be enclosed with '[' and ']'";
      }
    }
  }

  const err = schema.check(conf);
  if (err) return `invalid configuration: ${err}`;

  const nodesErr = checkNodeKeys(conf);
  if (nodesErr) return nodesErr;

  const tls = isObject(conf.tls) ? conf.tls : undefined;
  const sslId = tls?.client_cert_id;
  if (sslId !== undefined) {
    const found = await ssl(String(sslId));
    if (!found) return `failed to fetch ssl info by ssl id [${String(sslId)}], response code: 404`;
    if (found.type !== 'client') return `failed to fetch ssl info by ssl id [${String(sslId)}], wrong ssl type`;
  }

  if (conf.pass_host === 'rewrite' && (conf.upstream_host === undefined || conf.upstream_host === '')) {
    return "`upstream_host` can't be empty when `pass_host` is `rewrite`";
  }

  if (tls && typeof tls.client_cert === 'string') {
    const pemErr = validateCertKey(tls.client_cert, typeof tls.client_key === 'string' ? tls.client_key : undefined);
    if (pemErr) return pemErr;
  }

  if (conf.type !== 'chash') return undefined;
  const hashOn = typeof conf.hash_on === 'string' ? conf.hash_on : 'vars';
  if (hashOn !== 'consumer' && conf.key === undefined) return 'missing key';
  const rule = chashKeyRegex.get(hashOn);
  if (rule && typeof conf.key === 'string' && !rule.re.test(conf.key)) {
    return `invalid configuration: failed to match pattern ${luaQuote(rule.pattern)} with ${luaQuote(conf.key)}`;
  }
  return undefined;
}
