/**
 * Checks a whole standalone document (apisix/admin/config_validate.lua): every
 * item with the same checks an Admin API write gets (check.ts), references
 * resolved within the document itself (it is the whole configuration), plus
 * duplicate ids and `<resource>_conf_version` types. Every problem is reported,
 * not only the first, each with its resource, id, index and (when the message
 * names one) field. Used by POST /configs/validate, PUT /configs, the
 * file-driven store (handed this function by the composition root) and
 * `npm run config -- validate`.
 */
import { RESOURCES, type ResourceName } from '../core/model.js';
import type { PluginRegistry } from '../core/plugin/registry.js';
import {
  CONF_VERSION_SUFFIX,
  METADATA_DIGEST,
  METADATA_LAST_MODIFIED,
  STANDALONE_KEYS,
  itemId,
  type DocumentIssue,
  type StandaloneDoc,
} from '../core/store/standalone-doc.js';
import { checkCredential, checkResource, type CheckEnv } from './check.js';

export type ConfigIssue = DocumentIssue;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Lua's type names, as APISIX's messages use them. */
function luaType(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'object') return 'table';
  return typeof v;
}

/** Lists APISIX has that Portico does not serve: present and non-empty, they are refused. */
const UNSERVED: Readonly<Record<string, string>> = {
  secrets: 'Unsupported resource type: secrets (Portico resolves $env:// references)',
  stream_routes: 'stream mode is disabled, can not add stream routes',
  plugins: "the enabled plugins are config.yaml's `plugins` list in Portico, not part of this document",
};

const CREDENTIAL_ID = /^([^/]+)\/credentials\/([^/]+)$/;

interface Entry {
  index: number;
  id: string;
  value: Obj;
}

/** The document's items by resource, consumers without their credentials. */
function entries(doc: StandaloneDoc, resource: ResourceName): Entry[] {
  const list = doc[resource];
  if (!Array.isArray(list)) return [];
  const out: Entry[] = [];
  list.forEach((v: unknown, index) => {
    if (!isObject(v)) return;
    const id = itemId(resource, v, index);
    if (resource === 'consumers' && CREDENTIAL_ID.test(id)) return;
    out.push({ index, id, value: v });
  });
  return out;
}

function envOf(doc: StandaloneDoc, registry: PluginRegistry): CheckEnv {
  const cache = new Map<ResourceName, Entry[]>();
  const of = (r: ResourceName): Entry[] => {
    let e = cache.get(r);
    if (!e) cache.set(r, (e = entries(doc, r)));
    return e;
  };
  return {
    registry,
    exists: async (resource, id) => of(resource).some((e) => e.id === id),
    all: async (resource) => of(resource).map((e) => ({ id: e.id, value: stripIndex(e.value) })),
    async credentials() {
      const list = Array.isArray(doc.consumers) ? doc.consumers : [];
      const out: Array<{ username: string; id: string; value: Obj }> = [];
      for (const v of list) {
        const m = isObject(v) && typeof v.id === 'string' ? CREDENTIAL_ID.exec(v.id) : null;
        if (m && isObject(v)) out.push({ username: m[1]!, id: m[2]!, value: stripIndex(v) });
      }
      return out;
    },
  };
}

function stripIndex(v: Obj): Obj {
  if (!('modifiedIndex' in v)) return v;
  const { modifiedIndex: _ignored, ...rest } = v;
  return rest;
}

/** A duplicate of an earlier item's identifier, in APISIX's words. */
function duplicate(resource: string, item: Obj, seen: Set<string>): string | undefined {
  const isCred = resource === 'consumers' && item.id !== undefined;
  const identifier = resource === 'consumers' ? (item.id ?? item.username) : item.id;
  if (identifier === undefined || identifier === null) return undefined;
  const key = String(identifier);
  if (seen.has(key)) return `found duplicate ${isCred ? 'credential id' : resource === 'consumers' ? 'username' : 'id'} ${key} in ${resource}`;
  seen.add(key);
  return undefined;
}

async function checkItem(resource: ResourceName, item: Obj, env: CheckEnv): Promise<string | undefined> {
  const index = item.modifiedIndex;
  if (index !== undefined && !Number.isInteger(index)) {
    return `invalid configuration: property "modifiedIndex" validation failed: wrong type: expected integer, got ${Array.isArray(index) ? 'array' : index === null ? 'null' : typeof index}`;
  }
  const value = structuredClone(stripIndex(item));
  const cred = resource === 'consumers' && typeof value.id === 'string' ? CREDENTIAL_ID.exec(value.id) : null;
  if (cred) {
    const [, username, id] = cred as unknown as [string, string, string];
    const err = await checkCredential(username, id, { ...value, id }, env);
    if (err !== undefined) return err;
    return (await env.exists('consumers', username)) ? undefined : `consumer not found: ${username}`;
  }
  const id = resource === 'consumers' ? (typeof value.username === 'string' ? value.username : '') : value.id === undefined || value.id === null ? '' : String(value.id);
  return checkResource(resource, id, value, env);
}

/**
 * Every problem of `doc`; an empty list means it may be applied as it is.
 * References (upstream_id...) resolve in `context`: the document itself, or
 * what a PUT /configs would serve when some lists are kept from before.
 */
export async function validateConfiguration(doc: unknown, registry: PluginRegistry, context?: StandaloneDoc): Promise<ConfigIssue[]> {
  if (!isObject(doc)) return [{ error: `invalid configuration: expected a mapping of resource lists, got ${Array.isArray(doc) ? 'array' : luaType(doc)}` }];
  const issues: ConfigIssue[] = [];
  const lists = new Set<string>(STANDALONE_KEYS);
  for (const [key, v] of Object.entries(doc)) {
    if (key === METADATA_DIGEST || key === METADATA_LAST_MODIFIED) continue;
    if (key.endsWith(CONF_VERSION_SUFFIX) && lists.has(key.slice(0, -CONF_VERSION_SUFFIX.length))) {
      if (typeof v !== 'number') issues.push({ resource_type: key.slice(0, -CONF_VERSION_SUFFIX.length), error: `${key} must be a number, got ${luaType(v)}` });
      continue;
    }
    if (!lists.has(key)) {
      issues.push({ error: `unknown key "${key}": a standalone document holds ${STANDALONE_KEYS.join(', ')} and their _conf_version` });
      continue;
    }
    if (v === null || v === undefined) continue;
    if (!Array.isArray(v)) {
      issues.push({ resource_type: key, error: `invalid configuration: ${key} must be a list, got ${luaType(v)}` });
      continue;
    }
    if (v.length > 0 && Object.hasOwn(UNSERVED, key)) issues.push({ resource_type: key, error: UNSERVED[key]! });
  }

  const env = envOf(context ?? doc, registry);
  for (const resource of RESOURCES) {
    const list = doc[resource];
    if (!Array.isArray(list)) continue;
    const seen = new Set<string>();
    for (let index = 0; index < list.length; index++) {
      const item: unknown = list[index];
      if (!isObject(item)) {
        issues.push({ resource_type: resource, resource_id: '', index, error: `invalid configuration: wrong type: expected object, got ${Array.isArray(item) ? 'array' : item === null ? 'null' : typeof item}` });
        continue;
      }
      const resourceId = String(item.id ?? item.username ?? '');
      let err: string | undefined;
      try {
        err = await checkItem(resource, item, env);
      } catch (e) {
        err = (e as Error).message;
      }
      if (err !== undefined) issues.push(issue(resource, resourceId, index, err));
      const dup = duplicate(resource, item, seen);
      if (dup !== undefined) issues.push(issue(resource, resourceId, index, dup));
    }
  }
  return issues;
}

function issue(resource: string, id: string, index: number, error: string): ConfigIssue {
  const field = fieldOf(error);
  return field === undefined ? { resource_type: resource, resource_id: id, index, error } : { resource_type: resource, resource_id: id, index, field, error };
}

const REFERENCE_FIELDS: ReadonlyArray<[RegExp, string]> = [
  [/^failed to fetch upstream info by upstream id/, 'upstream_id'],
  [/^failed to fetch service info by service id/, 'service_id'],
  [/^failed to fetch plugin config info by plugin config id/, 'plugin_config_id'],
  [/^failed to fetch consumer group info by consumer group id/, 'group_id'],
  [/^failed to validate the 'vars' expression/, 'vars'],
  [/^only one of host or hosts/, 'hosts'],
  [/^only one of remote_addr or remote_addrs/, 'remote_addrs'],
  [/^wrong username/, 'username'],
  [/^found duplicate (id|credential id)/, 'id'],
  [/^found duplicate username/, 'username'],
];

/** The field an APISIX-style message is about: `property "a" validation failed: property "b" ...` is `a.b`. */
export function fieldOf(message: string): string | undefined {
  let msg = message.replace(/^invalid (configuration|plugins configuration): /, '');
  for (const [re, field] of REFERENCE_FIELDS) if (re.test(msg)) return field;
  const path: string[] = [];
  const plugin = /^failed to check the configuration of plugin (\S+) err: (.*)$/s.exec(msg) ?? /^unknown plugin \[([^\]]+)\]()$/.exec(msg);
  if (plugin) {
    path.push('plugins', plugin[1]!);
    msg = plugin[2]!;
  }
  for (;;) {
    const m = /^property "([^"]+)" validation failed: (.*)$/s.exec(msg);
    if (!m) break;
    path.push(m[1]!);
    msg = m[2]!;
  }
  const leaf = /^property "([^"]+)" is required/.exec(msg) ?? /^additional properties forbidden, found (\S+)/.exec(msg);
  if (leaf) path.push(leaf[1]!);
  return path.length > 0 ? path.join('.') : undefined;
}
