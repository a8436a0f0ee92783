/**
 * Redis for the limiting plugins' `redis` and `redis-cluster` policies
 * (apisix/utils/redis.lua, apisix/utils/rediscluster.lua), over ioredis.
 *
 * One client per distinct set of connection settings, shared by every conf
 * that names them and made on first use (a config that only names Redis
 * opens nothing until a request needs it; ioredis itself loads then too). A
 * client multiplexes its commands over one connection, so it never holds more
 * than `redis_keepalive_pool` connections; one left unused for
 * `redis_keepalive_timeout` is closed, as nginx closes an idle keepalive
 * connection, and the next use opens a fresh one.
 *
 * Every call is bounded by `redis_timeout` (connect, send and read alike, as
 * APISIX's set_timeouts): a Redis that is down or silent fails the call
 * within that time, and the plugin answers 500 or, with
 * `allow_degradation`, lets the request through.
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { PluginCleanup, PluginInitContext } from '../../core/plugin/index.js';
import type { RedisConf } from './redis-schema.js';

/** The commands the limiting plugins use, common to a single Redis and a cluster. */
export type RedisCommands = Pick<Redis, 'evalsha' | 'eval' | 'get' | 'zrem'>;

/** A Lua script run by its SHA1 first (EVALSHA), sent whole only when Redis does not know it yet. */
export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

export function luaScript(lua: string): LuaScript {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** Runs `script` with one key, as APISIX's limiters do (a cluster allows one slot per script). */
export async function evalScript(r: RedisCommands, script: LuaScript, key: string, args: ReadonlyArray<string | number>): Promise<unknown> {
  try {
    return await r.evalsha(script.sha, 1, key, ...args);
  } catch (err) {
    if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
    return r.eval(script.lua, 1, key, ...args);
  }
}

/** Where a conf's commands go: compiled once per conf, connected on first use. */
export interface RedisTarget {
  /** The connection settings as one string: confs with equal settings share a client. */
  readonly id: string;
  readonly timeoutMs: number;
  readonly idleMs: number;
  readonly conf: Readonly<RedisConf>;
}

export function redisTarget(conf: RedisConf): RedisTarget {
  const cluster = conf.policy === 'redis-cluster';
  const settings = cluster
    ? ['cluster', conf.redis_cluster_name, conf.redis_cluster_nodes, conf.redis_password, conf.redis_cluster_ssl, conf.redis_cluster_ssl_verify]
    : ['single', conf.redis_host, conf.redis_port ?? 6379, conf.redis_username, conf.redis_password, conf.redis_database ?? 0, conf.redis_ssl, conf.redis_ssl_verify];
  const timeoutMs = conf.redis_timeout ?? 1000;
  const idleMs = conf.redis_keepalive_timeout ?? 10_000;
  // Load the client library now, at config-change time, so the first request does not wait for it.
  (ioredis ??= loadIoredis()).catch(() => undefined);
  return { id: JSON.stringify([...settings, timeoutMs, idleMs]), timeoutMs, idleMs, conf };
}

interface Client {
  readonly redis: Redis | Cluster;
  readonly idleMs: number;
  /** Calls so far, and the count the last sweep saw with the time it saw it change. */
  uses: number;
  seenUses: number;
  seenAt: number;
}

const clients = new Map<string, Client>();
const loadIoredis = () => import('ioredis');
let ioredis: ReturnType<typeof loadIoredis> | undefined;
let sweeper: NodeJS.Timeout | undefined;
const SWEEP_MS = 1_000;

/** "host:port" or "[v6]:port", as APISIX's core.utils.parse_addr reads redis_cluster_nodes. */
function parseNode(addr: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr) ?? /^([^:]+)(?::(\d+))?$/.exec(addr);
  return { host: m?.[1] ?? addr, port: m?.[2] !== undefined ? Number(m[2]) : 6379 };
}

function retryDelay(times: number): number {
  return Math.min(times * 100, 2_000);
}

async function connect(t: RedisTarget): Promise<Redis | Cluster> {
  const { Redis: RedisClient, Cluster: ClusterClient } = await (ioredis ??= loadIoredis());
  const c = t.conf;
  const timeouts = {
    connectTimeout: t.timeoutMs,
    commandTimeout: t.timeoutMs,
    // Commands queued while (re)connecting fail at the first failed attempt instead of waiting for Redis to return.
    maxRetriesPerRequest: 0,
  };
  let redis: Redis | Cluster;
  if (c.policy === 'redis-cluster') {
    redis = new ClusterClient((c.redis_cluster_nodes ?? []).map(parseNode), {
      clusterRetryStrategy: retryDelay,
      slotsRefreshTimeout: t.timeoutMs,
      redisOptions: {
        ...timeouts,
        password: c.redis_password === '' ? undefined : c.redis_password,
        connectionName: c.redis_cluster_name,
        tls: c.redis_cluster_ssl ? { rejectUnauthorized: c.redis_cluster_ssl_verify === true } : undefined,
      },
    });
  } else {
    redis = new RedisClient({
      ...timeouts,
      host: c.redis_host,
      port: c.redis_port ?? 6379,
      // APISIX sends AUTH only with a non-empty password, with the username when there is one.
      username: c.redis_password ? c.redis_username : undefined,
      password: c.redis_password === '' ? undefined : c.redis_password,
      db: c.redis_database ?? 0,
      retryStrategy: retryDelay,
      tls: c.redis_ssl ? { rejectUnauthorized: c.redis_ssl_verify === true, servername: c.redis_host } : undefined,
    });
  }
  // Failures reach the caller through its command; without a listener ioredis would print each one.
  redis.on('error', () => undefined);
  return redis;
}

function sweep(): void {
  const now = Date.now();
  for (const [id, c] of clients) {
    if (c.uses !== c.seenUses) {
      c.seenUses = c.uses;
      c.seenAt = now;
    } else if (now - c.seenAt >= c.idleMs) {
      clients.delete(id);
      c.redis.disconnect();
    }
  }
  if (clients.size === 0 && sweeper !== undefined) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

const pending = new Map<string, Promise<Client>>();

function clientFor(t: RedisTarget): Client | Promise<Client> {
  const c = clients.get(t.id);
  if (c !== undefined) return c;
  let p = pending.get(t.id);
  if (p === undefined) {
    p = connect(t).then((redis) => {
      const made: Client = { redis, idleMs: t.idleMs, uses: 0, seenUses: -1, seenAt: Date.now() };
      clients.set(t.id, made);
      pending.delete(t.id);
      sweeper ??= setInterval(sweep, SWEEP_MS).unref();
      return made;
    });
    p.catch(() => pending.delete(t.id));
    pending.set(t.id, p);
  }
  return p;
}

class RedisTimeout extends Error {}

/**
 * Runs `fn` against the target's Redis; rejects when Redis fails or has not
 * answered within `redis_timeout`.
 */
export function withRedis<T>(t: RedisTarget, fn: (r: RedisCommands) => Promise<T>): Promise<T> {
  const c = clientFor(t);
  return c instanceof Promise ? c.then((made) => bounded(t, made, fn)) : bounded(t, c, fn);
}

/** The timer starts once the client exists: loading ioredis is no time spent waiting for Redis. */
function bounded<T>(t: RedisTarget, c: Client, fn: (r: RedisCommands) => Promise<T>): Promise<T> {
  c.uses++;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RedisTimeout(`redis did not answer within ${t.timeoutMs} ms`)), t.timeoutMs);
    fn(c.redis as unknown as RedisCommands).then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

let users = 0;

/**
 * Each plugin that uses Redis holds the clients from its init() to its
 * cleanup; when the last lets go (the gateway closes) every client closes.
 */
export function holdRedisClients(): () => void {
  users++;
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    if (--users > 0) return;
    for (const c of clients.values()) c.redis.disconnect();
    clients.clear();
    if (sweeper !== undefined) clearInterval(sweeper);
    sweeper = undefined;
  };
}

/**
 * A limiter's init() (limit-count, limit-req, limit-conn): joins its per-node
 * state and holds the Redis clients; the one cleanup lets go of both.
 */
export function initLimiter(state: { init(ctx: PluginInitContext): PluginCleanup }, ctx: PluginInitContext): PluginCleanup {
  const leave = state.init(ctx);
  const release = holdRedisClients();
  return () => {
    void leave();
    release();
  };
}
