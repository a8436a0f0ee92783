/**
 * Loads the local configuration: conf/config.yaml holds the defaults, and the
 * file named by PORTICO_CONFIG (or --config) is laid over it, as APISIX lays
 * config.yaml over its defaults (objects merge, arrays replace). Both are
 * validated, so a wrong key or type stops start-up with a message naming it.
 *
 * APISIX's own config.yaml loads too: keys APISIX defines that Portico does
 * not use are dropped and named in one warning (apisix-compat.ts decides
 * which), and the rest is validated against Portico's schema (schema.ts).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { createLogger } from '../log/logger.js';
import { parse as parseYaml } from 'yaml';
import { adaptApisixConfig, type SchemaNode } from './apisix-compat.js';
import { isPlainObject } from './plain-object.js';
import { ConfigError, PROJECT_ROOT } from './project-root.js';
import { applyRole } from './role.js';
import { configSchema, describeConfigError, validateConfig } from './schema.js';
import type { PorticoConfig } from './types.js';

export type DeepPartial<T> = T extends (infer U)[] ? U[] : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

export { ConfigError, PROJECT_ROOT };
export const DEFAULT_CONFIG_PATH = join(PROJECT_ROOT, 'conf', 'config.yaml');

/** `${{VAR}}` and `${{VAR:=default}}`, as APISIX substitutes them. */
export function substituteEnv(text: string, env: NodeJS.ProcessEnv, file: string): string {
  // Comment lines are left alone so documentation may show the syntax.
  return text
    .split('\n')
    .map((line) => (line.trimStart().startsWith('#') ? line : substituteLine(line, env, file)))
    .join('\n');
}

/** `${{VAR}}` in one line of text (or one string value). */
export function substituteLine(text: string, env: NodeJS.ProcessEnv, file: string): string {
  return text.replace(/\$\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::=\s*([^}]*?))?\s*\}\}/g, (_m, name: string, def?: string) => {
    const value = env[name];
    if (value !== undefined) return value;
    if (def !== undefined) return def;
    throw new ConfigError(`${file}: can't find environment variable ${name}`);
  });
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
  const ignored = adaptApisixConfig(doc, configSchema as SchemaNode, file);
  if (!validateConfig(doc)) throw new ConfigError(`${file}: ${describeConfigError(validateConfig.errors![0]!)}`);
  return { doc, ignored };
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
  return (message) => createLogger(env.PORTICO_LOG_LEVEL ?? 'info').warn(message);
}

/** APISIX's defaults for addresses a file may give in part: listen entries without ip/port, `status: {}`, `control: {}`. */
function fillListenDefaults(config: PorticoConfig): void {
  const apisix = config.apisix;
  apisix.ssl.listen = apisix.ssl.listen.map((l) => ({ ...l, ip: l.ip ?? '0.0.0.0', port: l.port ?? 9443 }));
  const status = apisix.status as Partial<NonNullable<PorticoConfig['apisix']['status']>> | null | undefined;
  if (status == null) delete apisix.status;
  else apisix.status = { ip: status.ip ?? '127.0.0.1', port: status.port ?? 7085 };
  const control = apisix.control as Partial<PorticoConfig['apisix']['control']> | null | undefined;
  apisix.control = { ip: control?.ip ?? '127.0.0.1', port: control?.port ?? 9090 };
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
    if (!validateConfig(opts.overrides)) throw new ConfigError(`overrides: ${describeConfigError(validateConfig.errors![0]!)}`);
    config = mergeConfig(config, opts.overrides);
  }
  if (env.PORTICO_ADMIN_KEY) {
    const keys = config.deployment.admin.admin_key.filter((k) => k.role !== 'admin');
    config.deployment.admin.admin_key = [{ name: 'admin', key: env.PORTICO_ADMIN_KEY, role: 'admin' }, ...keys];
  }
  if (env.PORTICO_DATA_DIR) config.deployment.embedded.data_dir = env.PORTICO_DATA_DIR;
  applyRole(config, env);
  const dataDir = config.deployment.embedded.data_dir;
  if (!isAbsolute(dataDir)) config.deployment.embedded.data_dir = resolve(dataDir);
  config.plugin_dirs = (config.plugin_dirs ?? []).map((dir) => resolve(dir));
  fillListenDefaults(config);
  if (ignored.length > 0) {
    const unique = [...new Set(ignored)];
    (opts.warn ?? defaultWarn(env))(`config: APISIX keys not used by Portico, ignored: ${unique.join(', ')}`);
  }
  return config;
}
