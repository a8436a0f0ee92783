/**
 * The session cookie (storage "cookie", lua-resty-session's default): the
 * session's data sealed with AES-256-GCM under a key derived from
 * session.secret, so every worker and node with the same conf reads it and
 * nobody can read or forge it. The seal carries its absolute expiry.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

export interface SessionData {
  /** Expiry, seconds since the epoch (absolute_timeout from creation). */
  exp: number;
  /** An authorization request in flight. */
  state?: string;
  nonce?: string;
  verifier?: string;
  original_url?: string;
  /** Once authenticated. */
  access_token?: string;
  refresh_token?: string;
  id_token?: Record<string, unknown>;
  enc_id_token?: string;
  user?: Record<string, unknown>;
  /** Scopes the token endpoint said it granted. */
  scope?: string;
  /** Access token expiry, seconds since the epoch. */
  access_exp?: number;
}

export function sessionKey(secret: string): Buffer {
  return createHash('sha256').update('portico openid-connect session\0').update(secret).digest();
}

export function seal(key: Buffer, data: SessionData): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(data), 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

export function unseal(key: Buffer, value: string): SessionData | undefined {
  const raw = Buffer.from(value, 'base64url');
  if (raw.length < 29) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    const text = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    const data = JSON.parse(text) as SessionData;
    return typeof data.exp === 'number' && data.exp > Date.now() / 1000 ? data : undefined;
  } catch {
    return undefined;
  }
}

/** The cookie's value from a Cookie header; the first of that name wins. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
