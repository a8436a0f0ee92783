/**
 * How a secret reference is written (`$env://NAME`, `$secret://...`): the
 * schema checks need to recognise one, the core resolves them
 * (src/core/secrets/refs.ts). Kept here so schema/ imports nothing above it.
 */
const ENV_PREFIX = '$env://';
const SECRET_PREFIX = '$secret://';

/** `$secret://...` and `$env://...` (the env prefix in any case, as APISIX) are resolved at use time. */
export function isSecretRef(v: unknown): v is string {
  return typeof v === 'string' && v.charCodeAt(0) === 36 /* $ */ && (v.startsWith(SECRET_PREFIX) || v.slice(0, ENV_PREFIX.length).toLowerCase() === ENV_PREFIX);
}

export function hasSecretRef(v: unknown): boolean {
  if (typeof v === 'string') return isSecretRef(v);
  if (Array.isArray(v)) return v.some(hasSecretRef);
  if (typeof v === 'object' && v !== null) return Object.values(v).some(hasSecretRef);
  return false;
}
