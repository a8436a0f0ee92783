/**
 * Loads the local configuration: conf/config.yaml holds the defaults, and the
 * file named by PORTICO_CONFIG (or --config) is laid over it, as APISIX lays
 * config.yaml over its defaults (objects merge, arrays replace). Both are
 * validated, so a wrong key or type stops start-up with a message naming it.
 *
 * APISIX's own config.yaml loads too: keys APISIX defines that Portico does
 * not use (apisix-config-keys.ts) are dropped and named in one warning,
 * `deployment.role` / `role_traditional.config_provider` pick the store, and
 * APISIX's shorthand shapes (`node_listen: 9080`, a keyring string) are read.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { ANY, APISIX_CONFIG_KEYS, APISIX_KEY_ALIASES, APISIX_REFUSED_WHEN_SET, type KeyTree } from './apisix-keys.js';
import type { PorticoConfig } from './types.js';
import { ConfigError, PROJECT_ROOT } from './project-root.js';
import { HTTP_ROUTER_NAMES } from '../match/router.js';

export type DeepPartial<T> = T extends (infer U)[] ? U[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

export { ConfigError, PROJECT_ROOT };
export const DEFAULT_CONFIG_PATH = join(PROJECT_ROOT, 'conf', 'config.yaml');

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

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
}

/** APISIX keys Portico maps itself (resolveRole, resolveAliases) rather than ignoring. */
const HONOURED_APISIX_KEYS = new Set(['deployment.role', 'deployment.role_traditional', ...Object.keys(APISIX_KEY_ALIASES)]);

/**
 * Walks `doc` against Portico's schema and APISIX's key tree: APISIX-only keys
 * are removed and their paths pushed to `ignored` (the topmost one of a
 * section); a key neither knows throws, suggesting a close one. `portico` is
 * undefined inside an APISIX-only section, which is still checked for typos.
 */
function sortKeys(
  doc: Record<string, unknown>,
  portico: SchemaNode | undefined,
  apisix: KeyTree | undefined,
  path: string,
  ignored: string[],
  file: string,
): void {
  for (const [key, value] of Object.entries(doc)) {
    const at = path ? `${path}.${key}` : key;
    const own = portico?.properties && Object.hasOwn(portico.properties, key) ? portico.properties[key] : undefined;
    const theirs = apisix && Object.hasOwn(apisix, key) ? apisix[key] : undefined;
    const theirTree = theirs === undefined || theirs === ANY ? undefined : theirs;
    if (own) {
      if (own.properties && isPlainObject(value)) sortKeys(value, own, theirTree, at, ignored, file);
    } else if (theirs !== undefined) {
      const refused = Object.hasOwn(APISIX_REFUSED_WHEN_SET, at) ? APISIX_REFUSED_WHEN_SET[at]! : undefined;
      if (refused?.set(value)) throw new ConfigError(`${file}: "${at}" is not supported by Portico: ${refused.why}`);
      if (portico && !HONOURED_APISIX_KEYS.has(at)) {
        ignored.push(at);
        delete doc[key];
      }
      if (theirTree && isPlainObject(value)) sortKeys(value, undefined, theirTree, at, ignored, file);
    } else {
      const known = [...Object.keys(portico?.properties ?? {}), ...Object.keys(apisix ?? {})];
      throw new ConfigError(`${file}: unknown key "${at}"${didYouMean(key, known, path)}`);
    }
  }
}

function didYouMean(key: string, known: string[], path: string): string {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const k of new Set(known)) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best === undefined ? '' : ` (did you mean "${path ? `${path}.` : ''}${best}"?)`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** APISIX's shorthand shapes, rewritten to Portico's before validation. */
function normalizeApisixShapes(doc: Record<string, unknown>, file: string): void {
  const apisix = doc.apisix;
  if (!isPlainObject(apisix)) return;
  let listen = apisix.node_listen;
  if (Array.isArray(listen)) {
    // APISIX: a list of ports or {ip, port}; Portico serves one address.
    if (listen.length !== 1) {
      throw new ConfigError(`${file}: "apisix.node_listen" lists ${listen.length} addresses; Portico listens on exactly one`);
    }
    listen = listen[0];
  }
  if (typeof listen === 'number') listen = { port: listen };
  if (listen !== undefined) apisix.node_listen = listen;
  const enc = apisix.data_encryption;
  if (isPlainObject(enc) && typeof enc.keyring === 'string') enc.keyring = [enc.keyring];
}

/** APISIX's admin keys may be numbers in YAML (APISIX takes tostring). */
function normalizeAdminKeys(doc: Record<string, unknown>): void {
  const admin = isPlainObject(doc.deployment) ? doc.deployment.admin : undefined;
  const keys = isPlainObject(admin) ? admin.admin_key : undefined;
  if (!Array.isArray(keys)) return;
  for (const k of keys) if (isPlainObject(k) && typeof k.key === 'number') k.key = String(k.key);
}

/** Moves each APISIX_KEY_ALIASES value to its Portico path. */
function resolveAliases(doc: Record<string, unknown>, file: string): void {
  for (const [from, to] of Object.entries(APISIX_KEY_ALIASES)) {
    const fromPath = from.split('.');
    const parent = walkTo(doc, fromPath.slice(0, -1), false);
    const last = fromPath[fromPath.length - 1]!;
    if (!parent || parent[last] === undefined) continue;
    const value = parent[last];
    delete parent[last];
    const toPath = to.split('.');
    const target = walkTo(doc, toPath.slice(0, -1), true);
    const key = toPath[toPath.length - 1]!;
    if (!target) continue; // a wrong type on the way, which validation reports
    if (target[key] !== undefined && target[key] !== value) {
      throw new ConfigError(`${file}: "${from}: ${String(value)}" and "${to}: ${String(target[key])}" disagree; keep one of them`);
    }
    target[key] = value;
  }
}

function walkTo(doc: Record<string, unknown>, path: string[], create: boolean): Record<string, unknown> | undefined {
  let node = doc;
  for (const key of path) {
    if (create && node[key] === undefined) node[key] = {};
    const next = node[key];
    if (!isPlainObject(next)) return undefined;
    node = next;
  }
  return node;
}

/**
 * APISIX's `deployment.role: traditional` with `role_traditional.config_provider`
 * (etcd when left out, as in APISIX) becomes Portico's `deployment.config_provider`.
 * What Portico cannot serve (the data_plane/control_plane split, yaml/json
 * standalone files) or a contradiction with `config_provider` stops start-up.
 */
function resolveRole(doc: Record<string, unknown>, file: string): void {
  const dep = doc.deployment;
  if (!isPlainObject(dep) || (dep.role === undefined && dep.role_traditional === undefined)) return;
  const role = dep.role ?? 'traditional';
  if (role !== 'traditional') {
    throw new ConfigError(
      `${file}: "deployment.role: ${String(role)}" is not supported: Portico runs APISIX's traditional role only ` +
        '(one process serving the Admin API and the data plane); set deployment.role: traditional',
    );
  }
  const rt = dep.role_traditional ?? {};
  if (!isPlainObject(rt)) throw new ConfigError(`${file}: "deployment.role_traditional" must be a mapping`);
  const provider = rt.config_provider ?? 'etcd';
  if (provider !== 'etcd') {
    throw new ConfigError(
      `${file}: "deployment.role_traditional.config_provider: ${String(provider)}" is not supported: Portico supports etcd ` +
        "here (APISIX's yaml/json standalone files are not read), or its own embedded store with " +
        'deployment.config_provider: embedded and no deployment.role',
    );
  }
  if (dep.config_provider !== undefined && dep.config_provider !== provider) {
    throw new ConfigError(
      `${file}: "deployment.config_provider: ${String(dep.config_provider)}" and ` +
        `"deployment.role_traditional.config_provider: ${provider}" disagree; keep one of them`,
    );
  }
  delete dep.role;
  delete dep.role_traditional;
  dep.config_provider = provider;
}

interface ConfigDoc {
  doc: Record<string, unknown>;
  /** APISIX keys present in the file that Portico does not use. */
  ignored: string[];
}

function readConfigFile(file: string, env: NodeJS.ProcessEnv): ConfigDoc {
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
  if (doc == null) return { doc: {}, ignored: [] };
  if (!isPlainObject(doc)) throw new ConfigError(`${file}: the top level must be a mapping`);
  const ignored: string[] = [];
  normalizeApisixShapes(doc, file);
  normalizeAdminKeys(doc);
  sortKeys(doc, configSchema as SchemaNode, APISIX_CONFIG_KEYS, '', ignored, file);
  resolveRole(doc, file);
  resolveAliases(doc, file);
  if (!validate(doc)) throw new ConfigError(`${file}: ${describe(validate.errors![0]!)}`);
  return { doc, ignored };
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
  /**
   * Receives the one start-up warning naming APISIX keys Portico ignores;
   * defaults to a pino warning at $PORTICO_LOG_LEVEL.
   */
  warn?: (message: string) => void;
}

function defaultWarn(env: NodeJS.ProcessEnv): (message: string) => void {
  return (message) => pino({ level: env.PORTICO_LOG_LEVEL ?? 'info' }).warn(message);
}

export function loadConfig(opts: LoadOptions = {}): PorticoConfig {
  const env = opts.env ?? process.env;
  const defaults = readConfigFile(DEFAULT_CONFIG_PATH, env);
  let config = defaults.doc as unknown as PorticoConfig;
  const ignored = defaults.ignored;
  const userPath = opts.path ?? env.PORTICO_CONFIG;
  if (userPath) {
    const abs = resolve(userPath);
    if (abs !== DEFAULT_CONFIG_PATH) {
      const user = readConfigFile(abs, env);
      config = mergeConfig(config, user.doc);
      ignored.push(...user.ignored);
    }
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
  if (ignored.length > 0) {
    const unique = [...new Set(ignored)];
    (opts.warn ?? defaultWarn(env))(`config: APISIX keys not used by Portico, ignored: ${unique.join(', ')}`);
  }
  return config;
}
