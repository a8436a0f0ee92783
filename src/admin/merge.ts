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

/**
 * Plain assignment of a client-chosen key such as `__proto__` would call the
 * prototype setter instead of storing data; define own properties instead.
 */
function setOwn(obj: JsonObject, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function getOwn(obj: JsonObject, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** A copy of `v` without null members in objects, for values that land where nothing was before. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (!isPlainObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, inner] of Object.entries(v)) if (inner !== null) setOwn(out, k, withoutNulls(inner));
  return out;
}

/** Merges `patch` into a copy of `base`. */
export function deepMerge(base: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    const current = getOwn(out, k);
    if (v === null) {
      delete out[k];
    } else if (isPlainObject(v) && isPlainObject(current)) {
      setOwn(out, k, deepMerge(current, v));
    } else {
      setOwn(out, k, withoutNulls(v));
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
    const next = getOwn(cursor, name);
    if (next === undefined || next === null) {
      const created: JsonObject = {};
      setOwn(cursor, name, created);
      cursor = created;
    } else if (isPlainObject(next)) {
      const copy: JsonObject = { ...next };
      setOwn(cursor, name, copy);
      cursor = copy;
    } else {
      throw adminError(`invalid sub-path: /${segments.slice(0, i + 1).join('/')}`);
    }
  }
  if (last === '') throw adminError(`invalid sub-path: /${segments.join('/')}`);
  if (value === null) delete cursor[last];
  else setOwn(cursor, last, value);
  return root;
}
