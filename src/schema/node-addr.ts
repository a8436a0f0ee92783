/**
 * An upstream node's `host[:port]` key (the hash form of `nodes`), split as
 * APISIX's core.utils.parse_addr splits it, and checked the way the array
 * form's `host` and `port` are: the Admin API refuses a key the data plane
 * could not turn into a node (the data plane's parser, src/core/upstream/nodes.ts,
 * splits with the same function).
 */
import { isIP, isIPv6 } from 'node:net';

export interface NodeAddrParts {
  /** As written; an IPv6 host keeps (or, bare, lacks) its brackets. */
  host: string;
  /** The text after the port's colon; undefined when there is no port. */
  portText?: string;
}

/** `host`, `host:port`, `[v6]`, `[v6]:port`; a bare IPv6 address (two colons or more) has no port. */
export function splitNodeAddr(addr: string): NodeAddrParts {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    if (end < 0) return { host: addr };
    const rest = addr.slice(end + 1);
    return rest.startsWith(':') ? { host: addr.slice(0, end + 1), portText: rest.slice(1) } : { host: addr.slice(0, end + 1) + rest };
  }
  const colon = addr.indexOf(':');
  if (colon < 0 || addr.indexOf(':', colon + 1) >= 0) return { host: addr };
  return { host: addr.slice(0, colon), portText: addr.slice(colon + 1) };
}

const PORT = /^[0-9]{1,5}$/;

/** The port as a number, or undefined when `text` is not a port in 1..65535. */
export function parsePort(text: string): number | undefined {
  if (!PORT.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}

// A DNS name: labels of letters, digits, hyphens and (inside, as Docker and
// Compose names have them) underscores, not starting or ending with either.
const LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$/;

/** An IP address (IPv6 in brackets, or bare) or a host name. */
export function isNodeHost(host: string): boolean {
  if (host.startsWith('[')) return host.endsWith(']') && isIPv6(host.slice(1, -1));
  if (isIP(host) !== 0) return true;
  if (host.length === 0 || host.length > 253) return false;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  return name.split('.').every((label) => LABEL.test(label));
}

/** The first thing wrong with a node key, in APISIX's words where it has some (`invalid port N`). */
export function nodeAddrError(addr: string): string | undefined {
  const { host, portText } = splitNodeAddr(addr);
  if (!isNodeHost(host)) return `invalid host ${JSON.stringify(host)} in node ${JSON.stringify(addr)}: expected an IP address or a host name`;
  if (portText !== undefined && parsePort(portText) === undefined) return `invalid port ${portText}`;
  return undefined;
}
