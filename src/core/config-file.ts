/**
 * Loads the local configuration: conf/config.yaml holds the defaults, and the
 * file named by PORTICO_CONFIG (or --config) is laid over it, as APISIX lays
 * config.yaml over its defaults (objects merge, arrays replace). Both are
 * validated, so a wrong key or type stops start-up with a message naming it.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import type { PorticoConfig } from './config-types.js';
import { HTTP_ROUTER_NAMES } from './router.js';

export type DeepPartial<T> = T extends (infer U)[] ? U[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The package root (holds package.json), from src/core or dist/src/core. */
export const PROJECT_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
export const DEFAULT_CONFIG_PATH = join(PROJECT_ROOT, 'conf', 'config.yaml');

function findRoot(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'conf'))) return d;
    if (dirname(d) === d) return process.cwd();
  }
}

const listen = {
  type: 'object',
  additionalProperties: false,
  properties: { ip: { type: 'string', minLength: 1 }, port: { type: 'integer', minimum: 0, maximum: 65535 } },
};

const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    apisix: {
      type: 'object',
      additionalProperties: false,
      properties: {
        node_listen: listen,
        trusted_addresses: { type: 'array', items: { type: 'string', minLength: 1 } },
        enable_server_tokens: { type: 'boolean' },
        router: {
          type: 'object',
          additionalProperties: false,
          properties: { http: { enum: HTTP_ROUTER_NAMES } },
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
      },
    },
    nginx_config: {
      type: 'object',
      additionalProperties: false,
      properties: {
        worker_processes: { anyOf: [{ type: 'integer', minimum: 1, maximum: 256 }, { const: 'auto' }] },
      },
    },
    deployment: {
      type: 'object',
      additionalProperties: false,
      properties: {
        config_provider: { enum: ['embedded', 'etcd'] },
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
    plugin_attr: { type: 'object', additionalProperties: { type: 'object' } },
  },
} as const;

const validate = new Ajv({ allErrors: false, strict: false }).compile(configSchema);

function describe(err: ErrorObject): string {
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

/** `${{VAR}}` and `${{VAR:=default}}`, as APISIX substitutes them. */
export function substituteEnv(text: string, env: NodeJS.ProcessEnv, file: string): string {
  // Comment lines are left alone so documentation may show the syntax.
  return text
    .split('\n')
    .map((line) => (line.trimStart().startsWith('#') ? line : substituteLine(line, env, file)))
    .join('\n');
}

function substituteLine(text: string, env: NodeJS.ProcessEnv, file: string): string {
  return text.replace(/\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=\s*([^}]*?))?\s*\}\}/g, (_m, name: string, def?: string) => {
    const value = env[name];
    if (value !== undefined) return value;
    if (def !== undefined) return def;
    throw new ConfigError(`${file}: can't find environment variable ${name}`);
  });
}

function readConfigFile(file: string, env: NodeJS.ProcessEnv): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(substituteEnv(text, env, file));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${file}: invalid YAML: ${(err as Error).message}`);
  }
  if (doc == null) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`${file}: the top level must be a mapping`);
  if (!validate(doc)) throw new ConfigError(`${file}: ${describe(validate.errors![0]!)}`);
  return doc as Record<string, unknown>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Objects merge key by key; arrays and scalars replace (APISIX's rule). */
export function mergeConfig<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? mergeConfig(out[k], v) : v;
  return out as T;
}

export interface LoadOptions {
  /** A config file to lay over the defaults; defaults to $PORTICO_CONFIG. */
  path?: string;
  /** Programmatic overrides laid over everything (tests). */
  overrides?: DeepPartial<PorticoConfig>;
  env?: NodeJS.ProcessEnv;
}

export function loadConfig(opts: LoadOptions = {}): PorticoConfig {
  const env = opts.env ?? process.env;
  let config = readConfigFile(DEFAULT_CONFIG_PATH, env) as unknown as PorticoConfig;
  const userPath = opts.path ?? env.PORTICO_CONFIG;
  if (userPath) {
    const abs = resolve(userPath);
    if (abs !== DEFAULT_CONFIG_PATH) config = mergeConfig(config, readConfigFile(abs, env));
  }
  if (opts.overrides) {
    if (!validate(opts.overrides)) throw new ConfigError(`overrides: ${describe(validate.errors![0]!)}`);
    config = mergeConfig(config, opts.overrides);
  }
  if (env.PORTICO_ADMIN_KEY) {
    const keys = config.deployment.admin.admin_key.filter((k) => k.role !== 'admin');
    config.deployment.admin.admin_key = [{ name: 'admin', key: env.PORTICO_ADMIN_KEY, role: 'admin' }, ...keys];
  }
  if (env.PORTICO_DATA_DIR) config.deployment.embedded.data_dir = env.PORTICO_DATA_DIR;
  const dataDir = config.deployment.embedded.data_dir;
  if (!isAbsolute(dataDir)) config.deployment.embedded.data_dir = resolve(dataDir);
  return config;
}
