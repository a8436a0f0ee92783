/**
 * The JSON schema of Portico's conf/config.yaml, compiled once with ajv: a key
 * or type it does not allow stops start-up with a message naming it. APISIX's
 * own keys that Portico does not use never reach it: apisix-compat.ts sorts
 * them out first.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { HTTP_ROUTER_NAMES } from '../match/router.js';

/** An nginx size: bytes, or a number with k, m or g. */
const SIZE = { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: '^[0-9]+[kKmMgG]?$' }] };

const listen = {
  type: 'object',
  additionalProperties: false,
  properties: { ip: { type: 'string', minLength: 1 }, port: { type: 'integer', minimum: 0, maximum: 65535 } },
};

const sslListen = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ip: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    enable_http2: { type: 'boolean' },
    // APISIX's HTTP/3 (QUIC) listener: Node 20 has no QUIC, so only `false` is accepted.
    enable_http3: { const: false },
  },
};

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    apisix: {
      type: 'object',
      additionalProperties: false,
      properties: {
        node_listen: { ...listen, properties: { ...listen.properties, enable_http2: { type: 'boolean' } } },
        enable_http2: { type: 'boolean' },
        ssl: {
          type: 'object',
          additionalProperties: false,
          properties: {
            enable: { type: 'boolean' },
            listen: { type: 'array', items: sslListen },
            ssl_protocols: { type: 'string', pattern: '^\\s*(TLSv1(\\.[123])?)(\\s+TLSv1(\\.[123])?)*\\s*$' },
            ssl_ciphers: { type: 'string', minLength: 1 },
            ssl_session_tickets: { type: 'boolean' },
            fallback_sni: { type: 'string', minLength: 1 },
          },
        },
        status: { anyOf: [listen, { type: 'null' }] },
        enable_control: { type: 'boolean' },
        control: listen,
        trusted_addresses: { type: 'array', items: { type: 'string', minLength: 1 } },
        enable_server_tokens: { type: 'boolean' },
        router: {
          type: 'object',
          additionalProperties: false,
          // ssl: APISIX allows only radixtree_sni; Portico has no other SNI matcher, so it is accepted and changes nothing.
          properties: { http: { enum: HTTP_ROUTER_NAMES }, ssl: { enum: ['radixtree_sni'] } },
        },
        delete_uri_tail_slash: { type: 'boolean' },
        normalize_uri_like_servlet: { type: 'boolean' },
        data_encryption: {
          type: 'object',
          additionalProperties: false,
          properties: {
            enable_encrypt_fields: { type: 'boolean' },
            keyring: {
              type: 'array',
              items: { type: 'string', anyOf: [{ minLength: 16, maxLength: 16 }, { minLength: 32, maxLength: 32 }] },
            },
          },
        },
        pubsub: {
          type: 'object',
          additionalProperties: false,
          properties: {
            max_frame_size: { type: 'integer', minimum: 1024, maximum: 104857600 },
            idle_timeout: { type: 'number', minimum: 0 },
          },
        },
        proxy_cache: {
          type: 'object',
          additionalProperties: false,
          properties: {
            // The disk strategy's default validity (proxy_cache_valid); Portico has no disk strategy.
            cache_ttl: { type: 'string', pattern: '^[0-9]+[smhd]?$' },
            zones: {
              type: 'array',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['name', 'memory_size'],
                properties: {
                  name: { type: 'string', minLength: 1, maxLength: 100 },
                  memory_size: SIZE,
                  disk_size: SIZE,
                  disk_path: { type: 'string', minLength: 1 },
                  cache_levels: { type: 'string', pattern: '^[12](:[12]){0,2}$' },
                  max_entry_size: SIZE,
                },
              },
            },
          },
        },
      },
    },
    nginx_config: {
      type: 'object',
      additionalProperties: false,
      properties: {
        worker_processes: { anyOf: [{ type: 'integer', minimum: 1, maximum: 256 }, { const: 'auto' }] },
        worker_semi_space_mb: { type: 'integer', minimum: 1, maximum: 1024 },
        event: {
          type: 'object',
          additionalProperties: false,
          properties: { worker_connections: { type: 'integer', minimum: 1 } },
        },
        http: {
          type: 'object',
          additionalProperties: false,
          // An nginx time ("60s", "500ms", "2m") or a number of seconds, as APISIX's config-default.yaml writes it.
          properties: { client_header_timeout: { anyOf: [{ type: 'string', pattern: '^[0-9]+(ms|s|m|h)?$' }, { type: 'integer', minimum: 1 }] } },
        },
      },
    },
    deployment: {
      type: 'object',
      additionalProperties: false,
      properties: {
        config_provider: { enum: ['embedded', 'etcd', 'yaml', 'json'] },
        role: { enum: ['traditional', 'data_plane'] },
        admin: {
          type: 'object',
          additionalProperties: false,
          properties: {
            enable_admin: { type: 'boolean' },
            admin_key_required: { type: 'boolean' },
            admin_key: {
              type: 'array',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['name', 'role'],
                properties: {
                  name: { type: 'string', minLength: 1 },
                  key: { type: ['string', 'null'] },
                  role: { enum: ['admin', 'viewer'] },
                },
              },
            },
            allow_admin: { type: 'array', items: { type: 'string', minLength: 1 } },
            admin_listen: listen,
            enable_admin_cors: { type: 'boolean' },
            max_body_size: { type: 'integer', minimum: 1 },
          },
        },
        embedded: {
          type: 'object',
          additionalProperties: false,
          properties: { data_dir: { type: 'string', minLength: 1 } },
        },
        etcd: {
          type: 'object',
          additionalProperties: false,
          properties: {
            host: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
            prefix: { type: 'string', pattern: '^/' },
            timeout: { type: 'number', exclusiveMinimum: 0 },
          },
        },
      },
    },
    plugins: { type: 'array', items: { type: 'string', minLength: 1 } },
    plugin_dirs: { type: 'array', items: { type: 'string', minLength: 1 } },
    plugin_attr: { type: 'object', additionalProperties: { type: 'object' } },
  },
} as const;

export const validateConfig = new Ajv({ allErrors: false, strict: false }).compile(configSchema);

export function describeConfigError(err: ErrorObject): string {
  const path = err.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(top level)';
  if (err.keyword === 'additionalProperties') {
    const key = (err.params as { additionalProperty: string }).additionalProperty;
    return `unknown key "${err.instancePath ? `${path}.` : ''}${key}"`;
  }
  if (err.keyword === 'enum') {
    return `"${path}" ${err.message}: ${(err.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  }
  return `"${path}" ${err.message}`;
}
