/**
 * Credentials two consumers must not share (apisix/consumer.lua
 * plugin_unique_key_attrs): an auth plugin finds the consumer by this value,
 * so a duplicate would make one of them unreachable.
 */
import { isSecretRef } from './ssl-check.js';

type Obj = Record<string, unknown>;

export const UNIQUE_KEY_ATTRS: Readonly<Record<string, string>> = {
  'key-auth': 'key',
  'basic-auth': 'username',
  'jwt-auth': 'key',
  'hmac-auth': 'key_id',
  'ldap-auth': 'user_dn',
  'ldap-auth-advanced': 'user_dn',
};

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** APISIX's message for the first clash, or undefined. `others` may include the consumer itself. */
export function duplicateConsumerKey(
  plugins: Obj,
  username: string,
  others: ReadonlyArray<{ username: string; plugins: Record<string, Obj> }>,
): string | undefined {
  for (const [name, conf] of Object.entries(plugins)) {
    const attr = UNIQUE_KEY_ATTRS[name];
    if (!attr || !isObject(conf)) continue;
    const key = conf[attr];
    // A secret reference cannot be resolved at write time; APISIX skips it too.
    if (typeof key !== 'string' || isSecretRef(key)) continue;
    for (const other of others) {
      if (other.username === username) continue;
      const theirs = other.plugins[name];
      if (isObject(theirs) && theirs[attr] === key) {
        return `duplicate ${attr} of plugin ${name} found with consumer: ${other.username}`;
      }
    }
  }
  return undefined;
}
