/** core.schema.upstream: standalone, and embedded in route and service. */
import type { JsonSchema } from './types.js';
import { hostDef, idSchema, metadataProps, timeoutDef } from './defs.js';
import { healthChecker } from './health-check.js';
import { MAX_UPSTREAM_NODES } from './limits.js';

export const nodesSchema: JsonSchema = {
  // Portico's bound (limits.ts), on either form.
  maxItems: MAX_UPSTREAM_NODES,
  maxProperties: MAX_UPSTREAM_NODES,
  anyOf: [
    {
      // Hash form: {"host:port": weight}; ports are checked after the schema (`invalid port`).
      type: 'object',
      patternProperties: { '.*': { description: 'weight of node', type: 'integer', minimum: 0 } },
    },
    {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          host: hostDef,
          port: { description: 'port of node', type: 'integer', minimum: 1, maximum: 65535 },
          weight: { description: 'weight of node', type: 'integer', minimum: 0 },
          priority: { description: 'priority of node', type: 'integer', default: 0 },
          metadata: { description: 'metadata of node', type: 'object' },
        },
        required: ['host', 'weight'],
      },
    },
  ],
};

const certificateSchema: JsonSchema = { type: 'string', minLength: 128, maxLength: 64 * 1024 };
const privateKeySchema: JsonSchema = { type: 'string', minLength: 64, maxLength: 64 * 1024 };
export { certificateSchema, privateKeySchema };

export const upstreamSchema: JsonSchema = {
  type: 'object',
  properties: {
    ...metadataProps(),
    nodes: nodesSchema,
    retries: { type: 'integer', minimum: 0 },
    retry_timeout: { type: 'number', minimum: 0 },
    timeout: timeoutDef,
    tls: {
      type: 'object',
      properties: {
        client_cert_id: idSchema,
        client_cert: certificateSchema,
        client_key: privateKeySchema,
        verify: {
          type: 'boolean',
          description: 'Turn on server certificate verification, currently only kafka upstream is supported',
          default: false,
        },
      },
      dependencies: {
        client_cert: { required: ['client_key'] },
        client_key: { required: ['client_cert'] },
        client_cert_id: { not: { required: ['client_cert', 'client_key'] } },
      },
    },
    keepalive_pool: {
      type: 'object',
      properties: {
        size: { type: 'integer', default: 320, minimum: 1 },
        idle_timeout: { type: 'number', default: 60, minimum: 0 },
        requests: { type: 'integer', default: 1000, minimum: 1 },
      },
    },
    // No enum on purpose: APISIX loads any other value as apisix.balancer.<type>
    // (the Kafka docs use "none").
    type: { description: 'algorithms of load balancing', type: 'string', default: 'roundrobin' },
    checks: healthChecker,
    hash_on: {
      type: 'string',
      default: 'vars',
      enum: ['vars', 'header', 'cookie', 'consumer', 'vars_combinations'],
    },
    key: { description: 'the key of chash for dynamic load balancing', type: 'string' },
    scheme: {
      default: 'http',
      enum: ['grpc', 'grpcs', 'http', 'https', 'tcp', 'tls', 'udp', 'kafka', 'redis'],
      description:
        'The scheme of the upstream. For L7 proxy, it can be one of grpc/grpcs/http/https. ' +
        'For L4 proxy, it can be one of tcp/tls/udp. For specific protocols, it can be kafka (or, in Portico, redis: Redis Streams pub/sub).',
    },
    discovery_type: { description: 'discovery type', type: 'string' },
    discovery_args: {
      type: 'object',
      properties: {
        namespace_id: { description: 'namespace id', type: 'string' },
        group_name: { description: 'group name', type: 'string' },
      },
    },
    pass_host: { description: 'mod of host passing', type: 'string', enum: ['pass', 'node', 'rewrite'], default: 'pass' },
    upstream_host: hostDef,
    service_name: { type: 'string', maxLength: 256, minLength: 1 },
  },
  oneOf: [{ required: ['nodes'] }, { required: ['service_name', 'discovery_type'] }],
  additionalProperties: false,
};

/** Patterns for chash `key`, by `hash_on` (upstream_hash_*_schema). `consumer` needs no key. */
export const CHASH_KEY_PATTERNS: Record<string, string | undefined> = {
  vars:
    '^((uri|server_name|server_addr|request_uri|remote_port' +
    '|remote_addr|query_string|host|hostname|mqtt_client_id)' +
    '|arg_[0-9a-zA-z_-]+)$',
  header: '^[a-zA-Z0-9-_]+$',
  cookie: '^[a-zA-Z0-9-_]+$',
};
