/**
 * GET on a collection (APISIX v3): name/label/uri/filter filters intersected,
 * `total` counted after filtering and before paging, and paging (both `page`
 * and `page_size` given) ordered by createdIndex.
 */
import type { StoreItem } from '../core/store/types.js';
import { AdminError, adminError } from './errors.js';
import { isPlainObject, type JsonObject } from './merge.js';
import type { ResourceDef } from './resources.js';

export interface ListEntry {
  key: string;
  value: JsonObject;
  createdIndex: number;
  modifiedIndex: number;
}

type Predicate = (value: JsonObject) => boolean;

function regex(param: string, source: string): RegExp {
  try {
    return new RegExp(source);
  } catch {
    throw adminError(`invalid argument ${param}: not a valid regular expression`);
  }
}

function compileFilters(def: ResourceDef, query: URLSearchParams): Predicate[] {
  const preds: Predicate[] = [];
  const name = query.get('name');
  if (name !== null) {
    const re = regex('name', name);
    preds.push((v) => typeof v.name === 'string' && re.test(v.name));
  }
  const label = query.get('label');
  if (label !== null) preds.push((v) => isPlainObject(v.labels) && Object.hasOwn(v.labels, label));
  const uri = query.get('uri');
  if (uri !== null && def.name === 'routes') {
    const re = regex('uri', uri);
    preds.push(
      (v) =>
        (typeof v.uri === 'string' && re.test(v.uri)) ||
        (Array.isArray(v.uris) && v.uris.some((u) => typeof u === 'string' && re.test(u))),
    );
  }
  const filter = query.get('filter');
  if (filter !== null) {
    // Only the resource's list_filter_fields count; APISIX ignores other fields with a warning.
    for (const [field, want] of new URLSearchParams(filter)) {
      if (!def.listFilterFields.includes(field)) continue;
      preds.push((v) => v[field] !== undefined && v[field] !== null && String(v[field]) === want);
    }
  }
  return preds;
}

function paging(query: URLSearchParams): { page: number; size: number } | undefined {
  const page = query.get('page');
  const size = query.get('page_size');
  if (page === null || size === null) return undefined;
  const n = Number(size);
  if (!Number.isInteger(n) || n < 10 || n > 500) throw new AdminError('ADMIN_INVALID', 'page_size must be between 10 and 500');
  const p = Number(page);
  if (!Number.isInteger(p) || p < 1) throw adminError('invalid argument page: should be a positive integer');
  return { page: p, size: n };
}

/** Filters on the stored values; `present` shapes what the reader is shown. */
export function listResponse(
  def: ResourceDef,
  items: readonly StoreItem[],
  query: URLSearchParams,
  present: (value: JsonObject) => JsonObject,
): { list: ListEntry[]; total: number } {
  const preds = compileFilters(def, query);
  const pages = paging(query);
  let kept = items.filter((i) => {
    const v = isPlainObject(i.value) ? i.value : {};
    return preds.every((p) => p(v));
  });
  const total = kept.length;
  if (pages) {
    kept = [...kept].sort((a, b) => a.createRevision - b.createRevision);
    kept = kept.slice((pages.page - 1) * pages.size, pages.page * pages.size);
  }
  const list = kept.map((i) => ({
    key: i.key,
    value: present(isPlainObject(i.value) ? i.value : {}),
    createdIndex: i.createRevision,
    modifiedIndex: i.modRevision,
  }));
  return { list, total };
}
