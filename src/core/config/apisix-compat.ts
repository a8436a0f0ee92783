/**
 * How an APISIX config.yaml becomes Portico's: keys APISIX defines that
 * Portico does not use (apisix-keys.ts) are dropped and reported, so the
 * caller names them in one start-up warning; keys Portico cannot honour when
 * set (APISIX_REFUSED_WHEN_SET) stop start-up; `deployment.role` /
 * `role_<role>.config_provider` pick the store (role.ts); APISIX's shorthand shapes
 * (`node_listen: 9080`, a keyring string, numeric admin keys) are rewritten;
 * and a key neither knows is a typo, reported with the closest known one.
 */
import { ANY, APISIX_CONFIG_KEYS, APISIX_KEY_ALIASES, APISIX_REFUSED_WHEN_SET, type KeyTree } from './apisix-keys.js';
import { isPlainObject } from './plain-object.js';
import { ConfigError } from './project-root.js';
import { resolveRole } from './role.js';

/**
 * Rewrites an APISIX-shaped document in place into what Portico's schema
 * (`portico`) validates, and returns the paths of the APISIX keys it dropped.
 */
export function adaptApisixConfig(doc: Record<string, unknown>, portico: SchemaNode, file: string): string[] {
  const ignored: string[] = [];
  normalizeApisixShapes(doc, file);
  normalizeAdminKeys(doc);
  sortKeys(doc, portico, APISIX_CONFIG_KEYS, '', ignored, file);
  resolveRole(doc, file);
  resolveAliases(doc, file);
  return ignored;
}

export interface SchemaNode {
  properties?: Record<string, SchemaNode>;
}

/** APISIX keys Portico maps itself (resolveRole, resolveAliases) rather than ignoring. */
const HONOURED_APISIX_KEYS = new Set(['deployment.role_traditional', 'deployment.role_data_plane', ...Object.keys(APISIX_KEY_ALIASES)]);

/**
 * Walks `doc` against Portico's schema and APISIX's key tree: APISIX-only keys
 * are removed and their paths pushed to `ignored` (the topmost one of a
 * section); a key neither knows throws, suggesting a close one. `portico` is
 * undefined inside an APISIX-only section, which is still checked for typos.
 */
function sortKeys(
  doc: Record<string, unknown>,
  portico: SchemaNode | undefined,
  apisix: KeyTree | undefined,
  path: string,
  ignored: string[],
  file: string,
): void {
  for (const [key, value] of Object.entries(doc)) {
    const at = path ? `${path}.${key}` : key;
    const own = portico?.properties && Object.hasOwn(portico.properties, key) ? portico.properties[key] : undefined;
    const theirs = apisix && Object.hasOwn(apisix, key) ? apisix[key] : undefined;
    const theirTree = theirs === undefined || theirs === ANY ? undefined : theirs;
    if (own) {
      if (own.properties && isPlainObject(value)) sortKeys(value, own, theirTree, at, ignored, file);
    } else if (theirs !== undefined) {
      const refused = Object.hasOwn(APISIX_REFUSED_WHEN_SET, at) ? APISIX_REFUSED_WHEN_SET[at]! : undefined;
      if (refused?.set(value)) throw new ConfigError(`${file}: "${at}" is not supported by Portico: ${refused.why}`);
      if (portico && !HONOURED_APISIX_KEYS.has(at)) {
        ignored.push(at);
        delete doc[key];
      }
      if (theirTree && isPlainObject(value)) sortKeys(value, undefined, theirTree, at, ignored, file);
    } else {
      const known = [...Object.keys(portico?.properties ?? {}), ...Object.keys(apisix ?? {})];
      throw new ConfigError(`${file}: unknown key "${at}"${didYouMean(key, known, path)}`);
    }
  }
}

function didYouMean(key: string, known: string[], path: string): string {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const k of new Set(known)) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best === undefined ? '' : ` (did you mean "${path ? `${path}.` : ''}${best}"?)`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** APISIX's shorthand shapes, rewritten to Portico's before validation. */
function normalizeApisixShapes(doc: Record<string, unknown>, file: string): void {
  const apisix = doc.apisix;
  if (!isPlainObject(apisix)) return;
  let listen = apisix.node_listen;
  if (Array.isArray(listen)) {
    // APISIX: a list of ports or {ip, port}; Portico serves one address.
    if (listen.length !== 1) {
      throw new ConfigError(`${file}: "apisix.node_listen" lists ${listen.length} addresses; Portico listens on exactly one`);
    }
    listen = listen[0];
  }
  if (typeof listen === 'number') listen = { port: listen };
  if (listen !== undefined) apisix.node_listen = listen;
  const enc = apisix.data_encryption;
  if (isPlainObject(enc) && typeof enc.keyring === 'string') enc.keyring = [enc.keyring];
}

/** APISIX's admin keys may be numbers in YAML (APISIX takes tostring). */
function normalizeAdminKeys(doc: Record<string, unknown>): void {
  const admin = isPlainObject(doc.deployment) ? doc.deployment.admin : undefined;
  const keys = isPlainObject(admin) ? admin.admin_key : undefined;
  if (!Array.isArray(keys)) return;
  for (const k of keys) if (isPlainObject(k) && typeof k.key === 'number') k.key = String(k.key);
}

/** Moves each APISIX_KEY_ALIASES value to its Portico path. */
function resolveAliases(doc: Record<string, unknown>, file: string): void {
  for (const [from, to] of Object.entries(APISIX_KEY_ALIASES)) {
    const fromPath = from.split('.');
    const parent = walkTo(doc, fromPath.slice(0, -1), false);
    const last = fromPath[fromPath.length - 1]!;
    if (!parent || parent[last] === undefined) continue;
    const value = parent[last];
    delete parent[last];
    const toPath = to.split('.');
    const target = walkTo(doc, toPath.slice(0, -1), true);
    const key = toPath[toPath.length - 1]!;
    if (!target) continue; // a wrong type on the way, which validation reports
    if (target[key] !== undefined && target[key] !== value) {
      throw new ConfigError(`${file}: "${from}: ${String(value)}" and "${to}: ${String(target[key])}" disagree; keep one of them`);
    }
    target[key] = value;
  }
}

function walkTo(doc: Record<string, unknown>, path: string[], create: boolean): Record<string, unknown> | undefined {
  let node = doc;
  for (const key of path) {
    if (create && node[key] === undefined) node[key] = {};
    const next = node[key];
    if (!isPlainObject(next)) return undefined;
    node = next;
  }
  return node;
}

