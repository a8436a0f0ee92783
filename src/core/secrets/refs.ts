/**
 * Secret references in plugin confs (apisix/secret.lua): a string value
 * `$env://NAME` is replaced by the environment variable NAME, and
 * `$env://NAME/key` by field `key` of NAME's value read as JSON. Resolved when
 * a conf is compiled (Node's environment does not change while it runs), so
 * requests never pay for it. `$secret://` needs a secrets manager, which
 * Portico does not have: such values stay as written, with an error logged,
 * as APISIX does with a reference it cannot resolve.
 */
import type { Logger } from 'pino';
import { hasSecretRef, isSecretRef } from '../../schema/secret-ref.js';

export { hasSecretRef, isSecretRef };

const ENV_PREFIX = '$env://';
const SECRET_PREFIX = '$secret://';

function resolveEnv(ref: string): string | undefined {
  const path = ref.slice(ENV_PREFIX.length);
  const slash = path.indexOf('/');
  const name = slash < 0 ? path : path.slice(0, slash);
  const value = process.env[name];
  if (value === undefined || slash < 0) return value;
  try {
    const parsed = JSON.parse(value) as unknown;
    const field = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)[path.slice(slash + 1)] : undefined;
    return field === undefined || field === null ? undefined : String(field);
  } catch {
    return undefined;
  }
}

function walk(v: unknown, where: string, log: (ref: string, where: string) => void): unknown {
  if (typeof v === 'string') {
    if (!isSecretRef(v)) return v;
    const resolved = v.startsWith(SECRET_PREFIX) ? undefined : resolveEnv(v);
    if (resolved === undefined) log(v, where);
    return resolved ?? v;
  }
  if (Array.isArray(v)) return v.map((item, i) => walk(item, `${where}[${i}]`, log));
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(v)) out[k] = walk(item, where === '' ? k : `${where}.${k}`, log);
    return out;
  }
  return v;
}

/** Does anything in `v` hold a reference? (Most confs hold none and are used as they are.) */
/** `conf` with its references resolved (a copy), or `conf` itself when it has none. */
export function resolveSecretRefs<T>(conf: T, plugin: string, logger: Logger): T {
  if (!hasSecretRef(conf)) return conf;
  return walk(conf, '', (ref, field) => logger.error({ plugin, field, ref }, 'config: failed to resolve a secret reference; the value is used as written')) as T;
}
