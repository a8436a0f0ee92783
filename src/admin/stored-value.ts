/**
 * How values cross the store boundary: plugin fields listed in a plugin's
 * encrypt_fields are sealed before a write when data encryption is on, and
 * private keys (an ssl's `key` and `keys`, an upstream's `tls.client_key`,
 * inline upstreams' too) whenever there is a keyring, as APISIX's
 * aes_encrypt_pkey does; both are opened again only for checks, PATCH merges
 * and admin-role readers (a viewer sees what is stored). Fields an API never
 * returns (ssl private keys) are dropped on every read.
 */
import type { PorticoConfig } from '../core/config/types.js';
import {
  decryptPluginFields,
  decryptPrivateKey,
  encryptPluginFields,
  encryptPrivateKey,
  mapSslKeys,
  mapUpstreamClientKey,
} from '../core/secrets/encryption.js';
import type { PluginConfMap } from '../core/model.js';
import type { PluginRegistry } from '../core/plugin/registry.js';
import type { AdminRole } from './auth.js';
import { isPlainObject, type JsonObject } from './merge.js';
import type { ResourceDef } from './resources.js';

export interface ValueCodec {
  /** The value to write to the store. */
  seal(def: ResourceDef, value: JsonObject): JsonObject;
  /** The stored value with plugin fields decrypted (for checks and PATCH merges). */
  open(def: ResourceDef, value: JsonObject): JsonObject;
  /** The value a reader with `role` is shown. */
  present(def: ResourceDef, value: JsonObject, role: AdminRole): JsonObject;
}

export function createCodec(config: PorticoConfig, registry: PluginRegistry): ValueCodec {
  const { enable_encrypt_fields: enabled, keyring } = config.apisix.data_encryption;
  const active = enabled && keyring.length > 0;

  const mapPlugins = (def: ResourceDef, value: JsonObject, fn: typeof encryptPluginFields): JsonObject => {
    if (!active || !def.hasPlugins || !isPlainObject(value.plugins)) return value;
    return { ...value, plugins: fn(value.plugins as PluginConfMap, registry, keyring) };
  };

  const mapKeys = (def: ResourceDef, value: JsonObject, fn: (v: string) => string): JsonObject => {
    if (keyring.length === 0) return value;
    switch (def.name) {
      case 'ssls':
        return mapSslKeys(value, fn);
      case 'upstreams':
        return mapUpstreamClientKey(value, fn);
      case 'routes':
      case 'services':
        return isPlainObject(value.upstream) ? { ...value, upstream: mapUpstreamClientKey(value.upstream, fn) } : value;
      default:
        return value;
    }
  };
  const sealKey = (v: string): string => encryptPrivateKey(v, keyring);
  const openKey = (v: string): string => decryptPrivateKey(v, keyring);

  const open = (def: ResourceDef, value: JsonObject): JsonObject => mapKeys(def, mapPlugins(def, value, decryptPluginFields), openKey);

  return {
    seal: (def, value) => mapKeys(def, mapPlugins(def, value, encryptPluginFields), sealKey),
    open,
    present: (def, value, role) => withoutHidden(def, role === 'admin' ? open(def, value) : value),
  };
}

/**
 * The value without the fields no answer carries (ssl private keys): reads
 * and the answers to writes alike, so a key sent once is never echoed back.
 */
export function withoutHidden(def: ResourceDef, value: JsonObject): JsonObject {
  if (def.hiddenOnRead.length === 0) return value;
  const out = { ...value };
  for (const field of def.hiddenOnRead) delete out[field];
  return out;
}
