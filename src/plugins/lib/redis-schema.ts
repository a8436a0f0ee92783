/**
 * The Redis fields the limiting plugins take with `policy: redis` and
 * `policy: redis-cluster`, as apisix/utils/redis-schema.lua declares them,
 * and the `if policy ... then` wrapper their schemas share.
 */

export const redisPolicySchema = {
  properties: {
    redis_host: { type: 'string', minLength: 2 },
    redis_port: { type: 'integer', minimum: 1, default: 6379 },
    redis_username: { type: 'string', minLength: 1 },
    redis_password: { type: 'string', minLength: 0 },
    redis_database: { type: 'integer', minimum: 0, default: 0 },
    redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
    redis_ssl: { type: 'boolean', default: false },
    redis_ssl_verify: { type: 'boolean', default: false },
    redis_keepalive_timeout: { type: 'integer', minimum: 1000, default: 10000 },
    redis_keepalive_pool: { type: 'integer', minimum: 1, default: 100 },
  },
  required: ['redis_host'],
};

export const redisClusterPolicySchema = {
  properties: {
    redis_cluster_nodes: { type: 'array', minItems: 1, items: { type: 'string', minLength: 2, maxLength: 100 } },
    redis_password: { type: 'string', minLength: 0 },
    redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
    redis_cluster_name: { type: 'string' },
    redis_cluster_ssl: { type: 'boolean', default: false },
    redis_cluster_ssl_verify: { type: 'boolean', default: false },
    redis_keepalive_timeout: { type: 'integer', minimum: 1000, default: 10000 },
    redis_keepalive_pool: { type: 'integer', minimum: 1, default: 100 },
  },
  required: ['redis_cluster_nodes', 'redis_cluster_name'],
};

type PolicySchema = typeof redisPolicySchema | typeof redisClusterPolicySchema;

/** limit-conn's variants add `key_ttl`, how long a counted connection may stay in Redis. */
export function withKeyTtl<S extends PolicySchema>(s: S): S {
  return { ...s, properties: { ...s.properties, key_ttl: { type: 'integer', default: 3600 } } };
}

/** The `if`/`then`/`else` that applies the Redis fields by policy (APISIX's limit-req.lua, limit-conn.lua). */
export function redisPolicyClauses(redis: PolicySchema, cluster: PolicySchema): Record<string, unknown> {
  return {
    if: { properties: { policy: { enum: ['redis'] } } },
    then: redis,
    else: { if: { properties: { policy: { enum: ['redis-cluster'] } } }, then: cluster },
  };
}

/** The Redis connection fields of a validated conf (defaults may be absent: the Admin API stores what was sent). */
export interface RedisConf {
  policy?: string;
  redis_host?: string;
  redis_port?: number;
  redis_username?: string;
  redis_password?: string;
  redis_database?: number;
  redis_timeout?: number;
  redis_ssl?: boolean;
  redis_ssl_verify?: boolean;
  redis_keepalive_timeout?: number;
  redis_keepalive_pool?: number;
  redis_cluster_nodes?: string[];
  redis_cluster_name?: string;
  redis_cluster_ssl?: boolean;
  redis_cluster_ssl_verify?: boolean;
}

const SINGLE_ONLY = ['redis_host', 'redis_port', 'redis_username', 'redis_database', 'redis_ssl', 'redis_ssl_verify'] as const;
const CLUSTER_ONLY = ['redis_cluster_nodes', 'redis_cluster_name', 'redis_cluster_ssl', 'redis_cluster_ssl_verify'] as const;
const ANY_REDIS = ['redis_password', 'redis_timeout', 'redis_keepalive_timeout', 'redis_keepalive_pool'] as const;

/**
 * A Redis field the conf's policy would not use. APISIX's schema lets such a
 * field through and ignores it; Portico refuses it, naming it, so that a conf
 * never holds a setting that is not applied.
 */
export function unusedRedisField(conf: RedisConf & Record<string, unknown>, extra: readonly string[] = []): string | undefined {
  const policy = conf.policy ?? 'local';
  const allowed = new Set<string>(policy === 'redis' ? [...SINGLE_ONLY, ...ANY_REDIS, ...extra] : policy === 'redis-cluster' ? [...CLUSTER_ONLY, ...ANY_REDIS, ...extra] : []);
  for (const f of [...SINGLE_ONLY, ...CLUSTER_ONLY, ...ANY_REDIS, ...extra]) {
    if (conf[f] !== undefined && !allowed.has(f)) return `${f} is only used with policy ${SINGLE_ONLY.includes(f as never) ? '"redis"' : CLUSTER_ONLY.includes(f as never) ? '"redis-cluster"' : '"redis" or "redis-cluster"'}, not "${policy}"`;
  }
  return undefined;
}
