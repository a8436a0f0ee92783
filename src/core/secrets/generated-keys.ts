/**
 * Keys that must never be well-known values. An admin key (or keyring) the
 * config leaves empty is generated once, kept in the data dir (mode 0600) so
 * restarts keep it, and reported to the caller, which says where it is kept:
 * the key itself is never printed (standard output ends up in logs that more
 * people read than the data dir). APISIX's
 * published default keys are refused outright (CVE-2020-13945).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { ensurePrivateDir } from './private-files.js';
import { join } from 'node:path';
import { ConfigError } from '../config/project-root.js';
import type { PorticoConfig } from '../config/types.js';

const PUBLISHED_KEYS = new Set([
  'edd1c9f034335f136f87ad84b625c8f1', // APISIX's default admin key
  '4054f7cf07e344346cd3f287985e76a2', // APISIX's default viewer key
]);

interface StoredSecrets {
  admin_keys?: Record<string, string>;
  keyring?: string;
}

export interface GeneratedSecret {
  what: string;
  value: string;
  /** Where it is kept: the file, and the field inside it (`admin_keys.admin`). */
  file: string;
  field: string;
}

/**
 * A data-encryption key: 32 characters, so APISIX's keyring format makes it
 * AES-256, each drawn from 64 (24 CSPRNG bytes as base64url: 192 bits, where
 * 16 hex characters gave AES-128 64 bits).
 */
export function generateKeyringEntry(): string {
  return randomBytes(24).toString('base64url');
}

/** Fills empty keys in `config` (mutating it) and returns what was generated now. */
export function resolveSecrets(config: PorticoConfig): GeneratedSecret[] {
  const admin = config.deployment.admin;
  for (const k of admin.admin_key) {
    if (k.key && PUBLISHED_KEYS.has(k.key)) {
      throw new ConfigError(
        `deployment.admin.admin_key "${k.name}" uses APISIX's published default key; set your own or leave it empty to generate one`,
      );
    }
  }
  const enc = config.apisix.data_encryption;
  // A node without an Admin API (a standalone data plane) needs no admin keys.
  const needKeys = admin.enable_admin && admin.admin_key_required && admin.admin_key.some((k) => !k.key);
  const needKeyring = enc.enable_encrypt_fields && enc.keyring.length === 0;
  if (!needKeys && !needKeyring) return [];

  const dir = config.deployment.embedded.data_dir;
  const file = join(dir, 'secrets.json');
  let stored: StoredSecrets = {};
  try {
    stored = JSON.parse(readFileSync(file, 'utf8')) as StoredSecrets;
  } catch {
    // First start: nothing stored yet.
  }
  const generated: GeneratedSecret[] = [];
  stored.admin_keys ??= {};
  if (needKeys) {
    for (const k of admin.admin_key) {
      if (k.key) continue;
      let key = stored.admin_keys[k.name];
      if (!key) {
        key = randomBytes(16).toString('hex');
        stored.admin_keys[k.name] = key;
        generated.push({ what: `${k.role} key "${k.name}"`, value: key, file, field: `admin_keys.${k.name}` });
      }
      k.key = key;
    }
  }
  if (needKeyring) {
    if (!stored.keyring) {
      stored.keyring = generateKeyringEntry();
      generated.push({ what: 'data encryption keyring', value: stored.keyring, file, field: 'keyring' });
    }
    enc.keyring = [stored.keyring];
  }
  if (generated.length > 0) {
    ensurePrivateDir(dir);
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(stored, null, 2), { mode: 0o600 });
    renameSync(tmp, file);
  }
  return generated;
}

/** The keyring generated into `dataDir` at a first start, if any (for tools reading that data dir). */
export function storedKeyring(dataDir: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8')) as StoredSecrets).keyring;
  } catch {
    return undefined;
  }
}
