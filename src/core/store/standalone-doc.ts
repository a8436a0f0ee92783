/**
 * APISIX's standalone configuration document: conf/apisix.yaml (ended by
 * `#END`), conf/apisix.json, and the body of PUT /apisix/admin/configs. One
 * list per resource (`routes:`, `upstreams:`...), optional
 * `<resource>_conf_version` numbers, `${{VAR}}` read from the environment
 * (apisix/core/config_yaml.lua, apisix/cli/file.lua).
 *
 * In the document a credential is an item of `consumers` whose id is
 * `<username>/credentials/<id>`; in the store it lives under its consumer's key
 * with the short id, as the Admin API writes it. The two functions at the end
 * convert between the forms, so a dump of a store applied again gives the same store.
 */
import { parse as parseYaml } from 'yaml';
import { substituteEnv, substituteLine } from '../config/file.js';
import { ConfigError } from '../config/project-root.js';
import { KEY_PREFIX, RESOURCES, resourceKey, type ResourceName } from '../model.js';

/** Every list APISIX's document may hold: its HTTP and stream etcd directories (apisix/constants.lua). */
export const STANDALONE_KEYS = [
  'consumer_groups',
  'consumers',
  'global_rules',
  'plugin_configs',
  'plugin_metadata',
  'plugins',
  'protos',
  'routes',
  'secrets',
  'services',
  'ssls',
  'stream_routes',
  'upstreams',
] as const;
export type StandaloneKey = (typeof STANDALONE_KEYS)[number];

export const CONF_VERSION_SUFFIX = '_conf_version';
/** Metadata APISIX keeps beside the resources of an API-driven configuration (and shows in GET /configs). */
export const METADATA_DIGEST = 'X-Digest';
export const METADATA_LAST_MODIFIED = 'X-Last-Modified';

export type StandaloneDoc = Record<string, unknown>;

/** One problem of a document, as POST /apisix/admin/configs/validate lists them. */
export interface DocumentIssue {
  /** The document's list (`routes`), when the problem is in one. */
  resource_type?: string;
  resource_id?: string;
  /** Position in the list, from 0. */
  index?: number;
  /** The field the message is about, as a dotted path inside the item (`upstream.nodes`), when it names one. */
  field?: string;
  error: string;
}

/** Checks a whole document; an empty list means it may be applied. The Admin API's checks, handed in by the composition root. */
export type DocumentValidator = (doc: StandaloneDoc) => Promise<DocumentIssue[]>;

/** One line per issue: where (list, index, id, field), then what. */
export function describeIssue(issue: DocumentIssue): string {
  const where: string[] = [];
  if (issue.resource_type !== undefined) where.push(issue.index === undefined ? issue.resource_type : `${issue.resource_type}[${issue.index}]`);
  if (issue.resource_id) where.push(`id ${issue.resource_id}`);
  if (issue.field) where.push(`field ${issue.field}`);
  return where.length > 0 ? `${where.join(', ')}: ${issue.error}` : issue.error;
}
export type StandaloneFormat = 'yaml' | 'json';

/** A credential's id in the document. */
const CREDENTIAL_ID = /^([^/]+)\/credentials\/([^/]+)$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses a standalone file's text. YAML must end with `#END` (an editor or a
 * copy caught half-way is never loaded); `${{VAR}}` is substituted in the YAML
 * text before parsing (quoting decides the type) and in JSON string values
 * after it (a value that was only a variable becomes a number or boolean when
 * it reads as one), as APISIX does. Throws ConfigError naming the file.
 */
export function parseStandalone(text: string, format: StandaloneFormat, file: string, env: NodeJS.ProcessEnv): StandaloneDoc {
  let doc: unknown;
  if (format === 'yaml') {
    if (!/#END\s*$/.test(text)) throw new ConfigError(`missing valid end flag in file ${file}`);
    try {
      doc = parseYaml(substituteEnv(text, env, file));
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`${file}: invalid YAML: ${(err as Error).message}`);
    }
  } else {
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`${file}: failed to decode json: ${(err as Error).message}`);
    }
    doc = substituteValues(doc, env, file);
  }
  if (doc === null || doc === undefined) return {};
  if (!isPlainObject(doc)) throw new ConfigError(`${file}: the top level must be a mapping of resource lists`);
  return doc;
}

function substituteValues(v: unknown, env: NodeJS.ProcessEnv, file: string): unknown {
  if (typeof v === 'string') {
    const out = substituteLine(v, env, file);
    if (out === v) return v;
    if (out.trim() !== '' && Number.isFinite(Number(out))) return Number(out);
    return out === 'true' ? true : out === 'false' ? false : out;
  }
  if (Array.isArray(v)) return v.map((x) => substituteValues(x, env, file));
  if (isPlainObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[substituteLine(k, env, file)] = substituteValues(x, env, file);
    return out;
  }
  return v;
}

/** One document item as the store holds it. */
export interface StandaloneItem {
  resource: ResourceName;
  key: string;
  value: Record<string, unknown>;
  /** The item's `modifiedIndex`, when it gave one (API-driven updates keep an item whose index did not move). */
  modifiedIndex?: number;
}

/** The store key's id of a document item: its id, a consumer's username, else APISIX's `arr_<n>`. */
export function itemId(resource: string, item: Record<string, unknown>, index: number): string {
  const id = item.id ?? (resource === 'consumers' ? item.username : undefined);
  return id === undefined || id === null ? `arr_${index + 1}` : String(id);
}

/**
 * A (validated) document's resources as store items, in document order.
 * Lists Portico does not serve are left to the validator, which refuses them.
 */
export function documentItems(doc: StandaloneDoc): StandaloneItem[] {
  const out: StandaloneItem[] = [];
  for (const resource of RESOURCES) {
    const list = doc[resource];
    if (!Array.isArray(list)) continue;
    list.forEach((raw: unknown, index) => {
      if (!isPlainObject(raw)) return;
      const { modifiedIndex, ...value } = raw;
      const id = itemId(resource, value, index);
      const cred = resource === 'consumers' ? CREDENTIAL_ID.exec(id) : null;
      let key = resourceKey(resource, id);
      if (cred) {
        key = `${resourceKey('consumers', cred[1]!)}/credentials/${cred[2]!}`;
        value.id = cred[2]!;
      } else if (resource !== 'consumers' && value.id === undefined) {
        value.id = id;
      }
      out.push({ resource, key, value, modifiedIndex: typeof modifiedIndex === 'number' ? modifiedIndex : undefined });
    });
  }
  return out;
}

/** Fields a store adds on write that say nothing about the configuration (and churn in version control). */
const STAMPS = ['create_time', 'update_time'] as const;

/**
 * The document form of store items (a dump): resources in APISIX's order, each
 * consumer followed by its credentials, without create_time/update_time.
 */
export function documentFromItems(items: ReadonlyArray<{ key: string; value: unknown }>): StandaloneDoc {
  const doc: StandaloneDoc = {};
  const prefix = KEY_PREFIX + '/';
  const byResource = new Map<string, Array<{ rest: string; value: Record<string, unknown> }>>();
  for (const item of items) {
    if (!item.key.startsWith(prefix) || !isPlainObject(item.value)) continue;
    const slash = item.key.indexOf('/', prefix.length);
    if (slash < 0) continue;
    const resource = item.key.slice(prefix.length, slash);
    if (!(RESOURCES as readonly string[]).includes(resource)) continue;
    const list = byResource.get(resource) ?? [];
    list.push({ rest: item.key.slice(slash + 1), value: item.value });
    byResource.set(resource, list);
  }
  for (const resource of RESOURCES) {
    const list = byResource.get(resource);
    if (!list) continue;
    const out: Array<Record<string, unknown>> = [];
    // '/' sorts before every other character, so a consumer's credentials follow it directly.
    const order = (k: string): string => k.replaceAll('/', '\u0000');
    for (const { rest, value } of list.sort((a, b) => (order(a.rest) < order(b.rest) ? -1 : order(a.rest) > order(b.rest) ? 1 : 0))) {
      const clean = { ...value };
      for (const stamp of STAMPS) delete clean[stamp];
      const cred = resource === 'consumers' ? CREDENTIAL_ID.exec(rest) : null;
      if (cred) clean.id = `${cred[1]!}/credentials/${cred[2]!}`;
      else if (rest.includes('/')) continue;
      out.push(clean);
    }
    if (out.length > 0) doc[resource] = out;
  }
  return doc;
}
