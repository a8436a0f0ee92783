/**
 * How values cross the store boundary: plugin fields listed in a plugin's
 * encrypt_fields are sealed before a write when data encryption is on, and
 * opened again only for admin-role readers (a viewer sees what is stored).
 * Fields an API never returns (ssl private keys) are dropped on every read.
 */
import type { PorticoConfig } from '../core/config/types.js';
import { decryptPluginFields, encryptPluginFields } from '../core/secrets/encryption.js';
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

  const open = (def: ResourceDef, value: JsonObject): JsonObject => mapPlugins(def, value, decryptPluginFields);

  return {
    seal: (def, value) => mapPlugins(def, value, encryptPluginFields),
    open,
    present(def, value, role) {
      let out = role === 'admin' ? open(def, value) : value;
      if (def.hiddenOnRead.length > 0) {
        out = { ...out };
        for (const field of def.hiddenOnRead) delete out[field];
      }
      return out;
    },
  };
}
