/**
 * What applying a document would do to a running configuration: objects to
 * create, change and delete, compared as stored (create_time/update_time and
 * modifiedIndex left out, ids as strings), and the Admin API calls that do it
 * in an order no reference check refuses.
 */
import { KEY_PREFIX, type ResourceName } from '../core/model.js';
import { documentItems, type StandaloneDoc, type StandaloneItem } from '../core/store/standalone-doc.js';
import { isDeepStrictEqual } from 'node:util';

export interface Change {
  action: 'create' | 'change' | 'delete';
  resource: ResourceName;
  /** The store key: `/apisix/routes/r1`, `/apisix/consumers/jack/credentials/a`. */
  key: string;
  /** Top-level fields that differ (change only). */
  fields?: string[];
  /** The desired value (create and change). */
  value?: Record<string, unknown>;
}

/** Referenced before referencing: upstreams before the services and routes that name them. */
const CREATE_ORDER: readonly ResourceName[] = [
  'upstreams',
  'ssls',
  'protos',
  'services',
  'plugin_configs',
  'consumer_groups',
  'consumers',
  'routes',
  'global_rules',
  'plugin_metadata',
];

function comparable(value: Record<string, unknown>): Record<string, unknown> {
  const { create_time: _c, update_time: _u, ...rest } = value;
  if (rest.id !== undefined && rest.id !== null) rest.id = String(rest.id);
  return rest;
}

const isCredential = (i: { key: string }): boolean => i.key.includes('/credentials/');

function rank(i: StandaloneItem | Change): number {
  // A consumer's credentials go after every consumer.
  return CREATE_ORDER.indexOf(i.resource) * 2 + (isCredential(i) ? 1 : 0);
}

export function plan(current: StandaloneDoc, desired: StandaloneDoc): Change[] {
  const have = new Map(documentItems(current).map((i) => [i.key, i]));
  const want = documentItems(desired);
  const changes: Change[] = [];
  for (const item of [...want].sort((a, b) => rank(a) - rank(b))) {
    const old = have.get(item.key);
    const value = comparable(item.value);
    if (!old) {
      changes.push({ action: 'create', resource: item.resource, key: item.key, value });
      continue;
    }
    const before = comparable(old.value);
    if (isDeepStrictEqual(before, value)) continue;
    const fields = [...new Set([...Object.keys(before), ...Object.keys(value)])].filter((f) => !isDeepStrictEqual(before[f], value[f])).sort();
    changes.push({ action: 'change', resource: item.resource, key: item.key, fields, value });
  }
  const wanted = new Set(want.map((i) => i.key));
  const deletes = [...have.values()].filter((i) => !wanted.has(i.key)).sort((a, b) => rank(b) - rank(a));
  for (const item of deletes) {
    // A deleted consumer takes its credentials with it.
    const owner = item.key.split('/credentials/')[0]!;
    if (isCredential(item) && owner !== item.key && !wanted.has(owner) && have.has(owner)) continue;
    changes.push({ action: 'delete', resource: item.resource, key: item.key });
  }
  return changes;
}

/** The Admin API path of a store key: `/apisix/routes/r1` → `/apisix/admin/routes/r1`. */
export function adminPath(key: string): string {
  return '/apisix/admin' + key.slice(KEY_PREFIX.length);
}

export function describeChange(c: Change): string {
  const sign = c.action === 'create' ? '+' : c.action === 'change' ? '~' : '-';
  const what = c.key.slice(KEY_PREFIX.length + 1);
  return `${sign} ${what}${c.fields ? ` (${c.fields.join(', ')})` : ''}`;
}
