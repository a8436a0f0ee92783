/**
 * PATCH semantics (APISIX core.table.merge / core.table.patch): objects merge
 * key by key, arrays and scalars replace, a JSON null deletes the key; a
 * sub-path PATCH replaces one attribute, creating missing parents.
 */
import { adminError } from './errors.js';

export type JsonObject = Record<string, unknown>;

export function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A copy of `v` without null members in objects, for values that land where nothing was before. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (!isPlainObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, inner] of Object.entries(v)) if (inner !== null) out[k] = withoutNulls(inner);
  return out;
}

/** Merges `patch` into a copy of `base`. */
export function deepMerge(base: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) {
      delete out[k];
    } else if (isPlainObject(v) && isPlainObject(out[k])) {
      out[k] = deepMerge(out[k] as JsonObject, v);
    } else {
      out[k] = withoutNulls(v);
    }
  }
  return out;
}

/**
 * Sets `value` at `segments` (already split, non-empty) inside a copy of
 * `base`. An empty last segment (a trailing slash) replaces the whole value.
 * A null value deletes the attribute.
 */
export function patchPath(base: JsonObject, segments: readonly string[], value: unknown): unknown {
  const last = segments[segments.length - 1]!;
  if (segments.length === 1 && last === '') return value;
  const root: JsonObject = { ...base };
  let cursor: JsonObject = root;
  for (let i = 0; i < segments.length - 1; i++) {
    const name = segments[i]!;
    const next = cursor[name];
    if (next === undefined || next === null) {
      cursor = cursor[name] = {};
    } else if (isPlainObject(next)) {
      cursor = cursor[name] = { ...next };
    } else {
      throw adminError(`invalid sub-path: /${segments.slice(0, i + 1).join('/')}`);
    }
  }
  if (last === '') throw adminError(`invalid sub-path: /${segments.join('/')}`);
  if (value === null) delete cursor[last];
  else cursor[last] = value;
  return root;
}
