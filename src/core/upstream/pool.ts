/**
 * One undici Pool per node, shared by every runtime whose node has the same
 * address, scheme, keep-alive and TLS settings. A config change that leaves a
 * node's settings alone therefore keeps its warm connections; a pool closes
 * when the last runtime holding it lets go.
 *
 * Deliberate difference from APISIX: `tls.verify` defaults to true for https
 * (and grpcs) upstreams. APISIX defaults it to false and only applies it to
 * Kafka; a gateway that silently accepts any certificate turns a TLS upstream
 * into plain text for an attacker on the path, so
 * operators must opt out with `tls.verify: false`.
 */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import type { UpstreamConf } from '../model.js';

export interface PoolSettings {
  tls: boolean;
  /** scheme grpc / grpcs: HTTP/2 to the node (h2c with prior knowledge for grpc, ALPN h2 for grpcs), as nginx's grpc_pass. */
  h2: boolean;
  /** keepalive_pool.size */
  connections: number;
  /** keepalive_pool.idle_timeout in ms; 0 disables reuse, as nginx's keepalive_timeout 0. */
  idleTimeoutMs: number;
  /** keepalive_pool.requests */
  maxRequestsPerClient: number;
  connectTimeoutMs: number;
  rejectUnauthorized: boolean;
  cert?: string;
  key?: string;
}

/** APISIX's defaults (nginx_config.http.upstream): keepalive 320, keepalive_timeout 60s, keepalive_requests 1000. */
const DEFAULT_SIZE = 320;
const DEFAULT_IDLE_S = 60;
const DEFAULT_REQUESTS = 1000;
/** nginx's proxy_connect_timeout default. */
const DEFAULT_CONNECT_S = 60;
/** Concurrent streams per HTTP/2 connection to a gRPC node (nginx's http2_max_concurrent_streams default is 128). */
const H2_STREAMS = 100;
/** How long a released pool may drain in-flight requests before its sockets are destroyed. */
const DRAIN_MS = 30_000;

export function poolSettings(conf: UpstreamConf): PoolSettings {
  const kp = conf.keepalive_pool ?? {};
  const tls = conf.scheme === 'https' || conf.scheme === 'grpcs';
  const settings: PoolSettings = {
    tls,
    h2: conf.scheme === 'grpc' || conf.scheme === 'grpcs',
    connections: kp.size ?? DEFAULT_SIZE,
    idleTimeoutMs: (kp.idle_timeout ?? DEFAULT_IDLE_S) * 1000,
    maxRequestsPerClient: kp.requests ?? DEFAULT_REQUESTS,
    connectTimeoutMs: (conf.timeout?.connect ?? DEFAULT_CONNECT_S) * 1000,
    rejectUnauthorized: conf.tls?.verify ?? true,
  };
  if (tls && conf.tls?.client_cert && conf.tls.client_key) {
    settings.cert = conf.tls.client_cert;
    settings.key = conf.tls.client_key;
  }
  return settings;
}

interface Entry {
  pool: Pool;
  refs: number;
  key: string;
}

const entries = new Map<string, Entry>();
const entryOf = new WeakMap<Pool, Entry>();

function digest(text: string | undefined): string {
  return text === undefined ? '' : createHash('sha256').update(text).digest('base64');
}

function settingsKey(origin: string, s: PoolSettings): string {
  return [
    origin,
    s.connections,
    s.idleTimeoutMs,
    s.maxRequestsPerClient,
    s.connectTimeoutMs,
    s.tls ? (s.rejectUnauthorized ? 'verify' : 'noverify') : '',
    s.h2 ? 'h2' : '',
    digest(s.cert),
    digest(s.key),
  ].join('|');
}

/** `host` is bracketed for IPv6, as in a URL. */
export function originOf(host: string, port: number, tls: boolean): string {
  return `${tls ? 'https' : 'http'}://${host}:${port}`;
}

/**
 * Takes a reference on the pool for this node and settings when one is live,
 * else undefined: a new config version adopts the warm pools of the one it
 * replaces without creating pools for nodes nobody has sent a request to.
 */
export function acquireLivePool(host: string, port: number, s: PoolSettings): Pool | undefined {
  const entry = entries.get(settingsKey(originOf(host, port, s.tls), s));
  if (entry === undefined) return undefined;
  entry.refs++;
  return entry.pool;
}

/** Takes a reference on the pool for this node and settings, creating it when none is live. */
export function acquirePool(host: string, port: number, s: PoolSettings): Pool {
  const origin = originOf(host, port, s.tls);
  const key = settingsKey(origin, s);
  let entry = entries.get(key);
  if (!entry) {
    const reuse = s.idleTimeoutMs > 0 && s.maxRequestsPerClient > 1;
    const pool = new Pool(origin, {
      connections: s.connections,
      // pipelining 0 is undici's "no keep-alive": every request says `connection: close`.
      // Over HTTP/2 it is the streams one connection carries at once.
      pipelining: s.h2 ? H2_STREAMS : reuse ? 1 : 0,
      allowH2: s.h2,
      // keepAliveMaxTimeout caps a server's Keep-Alive hint, so idle_timeout is a real ceiling.
      keepAliveTimeout: reuse ? s.idleTimeoutMs : 1,
      keepAliveMaxTimeout: reuse ? s.idleTimeoutMs : 1,
      // undici closes after maxRequestsPerClient + 1 requests; nginx's keepalive_requests counts all of them.
      maxRequestsPerClient: reuse ? s.maxRequestsPerClient - 1 : 0,
      connect: s.tls
        ? { timeout: s.connectTimeoutMs, rejectUnauthorized: s.rejectUnauthorized, cert: s.cert, key: s.key }
        : s.h2
          ? ({ timeout: s.connectTimeoutMs, useH2c: true } as { timeout: number })
          : { timeout: s.connectTimeoutMs },
    });
    entry = { pool, refs: 0, key };
    entries.set(key, entry);
    entryOf.set(pool, entry);
  }
  entry.refs++;
  return entry.pool;
}

/** Drops one reference; the last one closes the pool after in-flight requests finish (or DRAIN_MS). */
export async function releasePool(pool: Pool): Promise<void> {
  const entry = entryOf.get(pool);
  if (!entry || entry.refs === 0) return;
  if (--entry.refs > 0) return;
  entries.delete(entry.key);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      pool.destroy().then(resolve, resolve);
    }, DRAIN_MS);
    timer.unref();
  });
  try {
    await Promise.race([pool.close(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Live pools, for tests and metrics. */
export function livePoolCount(): number {
  return entries.size;
}
