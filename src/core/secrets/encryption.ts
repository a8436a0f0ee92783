/**
 * APISIX's data_encryption (apisix/core/utils.lua aes encrypt/decrypt) for
 * plugin fields named in a plugin's `encrypt_fields`: AES-CBC where key = IV =
 * the keyring entry (16 bytes: AES-128, 32 bytes: AES-256), PKCS#7 padding,
 * base64. Values written by APISIX read back here and the other way round.
 *
 * Encryption uses the first keyring entry; decryption tries each in turn, so
 * a key can be rotated by putting the new one first. A value no key decrypts
 * is left as it is (it may have been stored before encryption was turned on).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { PluginConfMap } from '../model.js';
import type { PluginRegistry } from '../plugin/registry.js';

export class KeyringError extends Error {}

interface AesKey {
  algorithm: 'aes-128-cbc' | 'aes-256-cbc';
  key: Buffer;
}

function toAesKey(entry: string): AesKey {
  const key = Buffer.from(entry, 'utf8');
  if (key.length === 16) return { algorithm: 'aes-128-cbc', key };
  if (key.length === 32) return { algorithm: 'aes-256-cbc', key };
  throw new KeyringError(`data_encryption keyring entries must be 16 or 32 bytes long, got ${key.length}`);
}

const keyCache = new Map<string, AesKey>();
function aesKey(entry: string): AesKey {
  let k = keyCache.get(entry);
  if (!k) {
    k = toAesKey(entry);
    keyCache.set(entry, k);
  }
  return k;
}

export function encryptValue(plain: string, keyring: readonly string[]): string {
  const first = keyring[0];
  if (first === undefined) throw new KeyringError('data_encryption keyring is empty');
  const { algorithm, key } = aesKey(first);
  const iv = key.subarray(0, 16);
  const c = createCipheriv(algorithm, key, iv);
  return Buffer.concat([c.update(plain, 'utf8'), c.final()]).toString('base64');
}

/** Undefined when no keyring entry decrypts the value. */
export function decryptValue(cipherText: string, keyring: readonly string[]): string | undefined {
  // Base64 of whole AES blocks only; anything else is a plain value.
  if (cipherText.length === 0 || cipherText.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(cipherText)) return undefined;
  const data = Buffer.from(cipherText, 'base64');
  if (data.length === 0 || data.length % 16 !== 0) return undefined;
  for (const entry of keyring) {
    const { algorithm, key } = aesKey(entry);
    try {
      const d = createDecipheriv(algorithm, key, key.subarray(0, 16));
      const out = Buffer.concat([d.update(data), d.final()]).toString('utf8');
      // Wrong keys usually fail the padding check; the few that pass give non-UTF-8 garbage.
      if (!out.includes('\uFFFD')) return out;
    } catch {
      // bad padding: not this key
    }
  }
  return undefined;
}

type Transform = (value: string) => string;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Applies `fn` at a dotted path in a fresh copy of `node` (APISIX
 * process_encrypt_field): arrays met on the way are walked element by
 * element, and a leaf that is an array or map of strings is transformed
 * string by string.
 */
function atPath(node: unknown, path: readonly string[], fn: Transform): unknown {
  if (Array.isArray(node)) return node.map((item) => (isObject(item) ? atPath(item, path, fn) : item));
  if (!isObject(node)) return node;
  const [head, ...rest] = path;
  if (head === undefined || !(head in node)) return node;
  const val = node[head];
  let next: unknown;
  if (rest.length > 0) {
    next = atPath(val, rest, fn);
  } else if (typeof val === 'string') {
    next = fn(val);
  } else if (Array.isArray(val)) {
    next = val.map((v) => (typeof v === 'string' ? fn(v) : v));
  } else if (isObject(val)) {
    next = Object.fromEntries(Object.entries(val).map(([k, v]) => [k, typeof v === 'string' ? fn(v) : v]));
  } else {
    return node;
  }
  return { ...node, [head]: next };
}

function transformPlugins(
  plugins: PluginConfMap,
  registry: PluginRegistry,
  fn: Transform,
): PluginConfMap {
  const out: PluginConfMap = {};
  for (const [name, conf] of Object.entries(plugins)) {
    const fields = registry.get(name)?.encrypt_fields;
    let next: unknown = conf;
    if (fields && isObject(conf)) for (const f of fields) next = atPath(next, f.split('.'), fn);
    out[name] = next as Record<string, unknown>;
  }
  return out;
}

/**
 * A copy of `plugins` with every `encrypt_fields` value encrypted with the
 * first keyring entry. Confs of unknown plugins are copied unchanged.
 */
export function encryptPluginFields(
  plugins: PluginConfMap,
  registry: PluginRegistry,
  keyring: readonly string[],
): PluginConfMap {
  return transformPlugins(plugins, registry, (v) => encryptValue(v, keyring));
}

/** The reverse: values no keyring entry decrypts stay as they are (and `onUndecryptable` is told, once per value). */
export function decryptPluginFields(
  plugins: PluginConfMap,
  registry: PluginRegistry,
  keyring: readonly string[],
  onUndecryptable?: () => void,
): PluginConfMap {
  return transformPlugins(plugins, registry, (v) => {
    const plain = decryptValue(v, keyring);
    if (plain === undefined) onUndecryptable?.();
    return plain ?? v;
  });
}

/** For plugin_metadata values: one conf, the plugin named by its id. */
export function encryptConf(
  name: string,
  conf: Record<string, unknown>,
  registry: PluginRegistry,
  keyring: readonly string[],
): Record<string, unknown> {
  return encryptPluginFields({ [name]: conf }, registry, keyring)[name] as Record<string, unknown>;
}

export function decryptConf(
  name: string,
  conf: Record<string, unknown>,
  registry: PluginRegistry,
  keyring: readonly string[],
  /** Told once per value no keyring entry opens (the value is then kept as stored, as APISIX keeps it). */
  onUndecryptable?: () => void,
): Record<string, unknown> {
  return decryptPluginFields({ [name]: conf }, registry, keyring, onUndecryptable)[name] as Record<string, unknown>;
}

/**
 * APISIX's aes_encrypt_pkey (apisix/ssl.lua): a private key in PEM form (it
 * starts with "---") is encrypted with the keyring; anything else (already
 * encrypted, a secret reference) is stored as it is.
 */
export function encryptPrivateKey(value: string, keyring: readonly string[]): string {
  return keyring.length > 0 && value.startsWith('---') ? encryptValue(value, keyring) : value;
}

/** aes_decrypt_pkey: PEM stays; otherwise the decrypted key, or the value as stored when no keyring entry opens it. */
export function decryptPrivateKey(value: string, keyring: readonly string[]): string {
  if (keyring.length === 0 || value.startsWith('---')) return value;
  return decryptValue(value, keyring) ?? value;
}

/**
 * A copy of an upstream conf with `tls.client_key` run through `fn` (APISIX
 * encrypts it in apisix/upstream.lua encrypt_conf); the conf itself when it
 * has none.
 */
export function mapUpstreamClientKey<T extends { tls?: unknown }>(conf: T, fn: Transform): T {
  const tls = conf.tls;
  if (!isObject(tls) || typeof tls.client_key !== 'string') return conf;
  return { ...conf, tls: { ...tls, client_key: fn(tls.client_key) } };
}

/** A copy of an ssl conf with `key` and each of `keys` run through `fn` (APISIX admin/resource.lua). */
export function mapSslKeys<T extends { key?: unknown; keys?: unknown }>(conf: T, fn: Transform): T {
  const out = { ...conf };
  if (typeof out.key === 'string') out.key = fn(out.key);
  if (Array.isArray(out.keys)) out.keys = out.keys.map((k: unknown) => (typeof k === 'string' ? fn(k) : k));
  return out;
}
