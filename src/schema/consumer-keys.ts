/**
 * Credentials two consumers must not share (apisix/consumer.lua
 * plugin_unique_key_attrs): an auth plugin finds the consumer by this value,
 * so a duplicate would make one of them unreachable.
 */
import { isSecretRef } from './secret-ref.js';

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

/** A holder of auth keys: a consumer, or one of its credentials. */
export interface KeyOwner {
  username: string;
  /** Set for a credential. */
  credentialId?: string;
  plugins: Record<string, Obj>;
}

/**
 * APISIX's message for the first clash (consumer.check_duplicate_key), or
 * undefined. `writer` is what is being written: a consumer clashes with
 * nobody under its own name (itself or its credentials); a credential clashes
 * with everything but itself, its own consumer included.
 */
export function duplicateConsumerKey(plugins: Obj, writer: { username: string; credentialId?: string }, owners: readonly KeyOwner[]): string | undefined {
  for (const [name, conf] of Object.entries(plugins)) {
    const attr = UNIQUE_KEY_ATTRS[name];
    if (!attr || !isObject(conf)) continue;
    const key = conf[attr];
    // A secret reference cannot be resolved at write time; APISIX skips it too.
    if (typeof key !== 'string' || isSecretRef(key)) continue;
    for (const owner of owners) {
      const self =
        writer.credentialId === undefined
          ? owner.username === writer.username
          : owner.username === writer.username && owner.credentialId === writer.credentialId;
      if (self) continue;
      const theirs = owner.plugins[name];
      if (isObject(theirs) && theirs[attr] === key) {
        const desc = owner.credentialId === undefined ? `consumer: ${owner.username}` : `credential: ${owner.credentialId} of consumer: ${owner.username}`;
        return `duplicate ${attr} of plugin ${name} found with ${desc}`;
      }
    }
  }
  return undefined;
}
