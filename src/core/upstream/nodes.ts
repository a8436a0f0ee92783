/**
 * Turns an upstream's `nodes` (hash or array form) into one flat list, the way
 * APISIX's upstream.lua does before the balancer sees it: default ports by
 * scheme, IPv6 hosts in brackets, priority 0 unless given.
 */
import type { UpstreamConf } from '../model.js';
import { parsePort, splitNodeAddr } from '../../schema/node-addr.js';

export interface ParsedNode {
  /** `host:port`; IPv6 hosts bracketed. */
  key: string;
  /** Bracketed for IPv6. */
  host: string;
  /** Without brackets, for socket connects. */
  connectHost: string;
  port: number;
  weight: number;
  priority: number;
}

/** APISIX's `scheme_to_port`. */
const SCHEME_PORT: Readonly<Record<string, number>> = { http: 80, https: 443, grpc: 80, grpcs: 443 };

export function defaultPort(scheme: string | undefined): number {
  return SCHEME_PORT[scheme ?? 'http'] ?? 80;
}

function bracket(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Splits `host`, `host:port`, `[v6]`, `[v6]:port`; a bare IPv6 address has no port. */
export function parseAddr(addr: string): { host: string; port?: number } {
  const { host, portText } = splitNodeAddr(addr);
  const bracketed = host.startsWith('[') ? host : bracket(host);
  if (portText === undefined) return { host: bracketed };
  const port = parsePort(portText);
  if (port === undefined) throw new Error(`invalid port in upstream node "${addr}"`);
  return { host: bracketed, port };
}

export function parseNodes(conf: UpstreamConf): ParsedNode[] {
  const fallbackPort = defaultPort(conf.scheme);
  const out: ParsedNode[] = [];
  const add = (rawHost: string, port: number | undefined, weight: number, priority: number): void => {
    const host = bracket(rawHost);
    const p = port ?? fallbackPort;
    out.push({ key: `${host}:${p}`, host, connectHost: unbracket(host), port: p, weight, priority });
  };
  const nodes = conf.nodes;
  if (Array.isArray(nodes)) {
    for (const n of nodes) add(n.host, n.port, n.weight, n.priority ?? 0);
  } else if (nodes) {
    for (const addr of Object.keys(nodes)) {
      const { host, port } = parseAddr(addr);
      add(host, port, nodes[addr]!, 0);
    }
  }
  return out;
}
