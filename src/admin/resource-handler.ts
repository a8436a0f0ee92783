/**
 * The one generic handler behind /apisix/admin/<resource>/<id>/<sub/path>,
 * driven by the resource table: APISIX's id rules, timestamps, v3 response
 * shapes, PATCH and DELETE reference checks (apisix/admin/init.lua and
 * resource.lua, docs/en/latest/admin-api.md).
 * Values are validated as a deep copy and stored exactly as sent plus
 * id/create_time/update_time (defaults are never persisted).
 */
import type { ResourceName } from '../core/model.js';
import type { PluginRegistry } from '../core/plugin/registry.js';
import type { ConfigStore } from '../core/store/types.js';
import { checkResource, type CheckEnv } from './check.js';
import type { AdminRole } from './auth.js';
import { adminError, keyNotFound } from './errors.js';
import { listResponse } from './list.js';
import { deepMerge, isPlainObject, patchPath, type JsonObject } from './merge.js';
import { createCredentialHandler } from './credentials.js';
import { checkNotReferenced } from './references.js';
import { RESOURCE_DEFS, type AdminMethod, type ResourceDef } from './resources.js';
import { collectionPrefix, listItems, listValues, objectKey, putStamped } from './store-access.js';
import { withoutHidden, type ValueCodec } from './stored-value.js';

export interface ResourceRequest {
  method: AdminMethod;
  /** Path segments after /apisix/admin/, percent-decoded: [resource, id?, ...subPath]. */
  segments: readonly string[];
  query: URLSearchParams;
  body: unknown;
  role: AdminRole;
}

export interface ResourceResponse {
  status: number;
  body: unknown;
}

export interface ResourceHandlerDeps {
  store: ConfigStore;
  registry: PluginRegistry;
  codec: ValueCodec;
}

const FORBIDDEN = ['create_time', 'update_time'] as const;

function now(): number {
  return Math.floor(Date.now() / 1000);
}

/** Lua truthiness: only nil and false are false, and cjson's null is a (truthy) userdata. */
function present(v: unknown): boolean {
  return v !== undefined && v !== false;
}

function checkForbidden(conf: JsonObject): void {
  const prefix = 'the property is forbidden: ';
  for (const p of FORBIDDEN) if (present(conf[p])) throw adminError(`${prefix} ${p}`);
  if (isPlainObject(conf.upstream)) {
    for (const p of FORBIDDEN) if (present(conf.upstream[p])) throw adminError(`${prefix} upstream.${p}`);
  }
  if (isPlainObject(conf.plugins)) {
    for (const p of FORBIDDEN) if (present(conf.plugins[p])) throw adminError(`${prefix} plugins.${p}`);
  }
}

function checkTtl(query: URLSearchParams): void {
  const ttl = query.get('ttl');
  if (ttl === null) return;
  if (ttl.trim() === '' || !Number.isFinite(Number(ttl))) throw adminError('invalid argument ttl: should be a number');
  // Neither store has leases; refusing is better than storing an object that never expires.
  throw adminError('invalid argument ttl: expiring objects are not supported by Portico');
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** A store key segment must be one path segment; ids are checked in full by the schema. */
function safeSegment(id: string, def: ResourceDef): string {
  if (id === '.' || id === '..' || id.includes('/')) {
    const field = def.keyField === 'username' ? 'username' : 'id';
    throw adminError(`invalid configuration: property "${field}" validation failed: object matches none of the required`);
  }
  return id;
}

export function createResourceHandler(deps: ResourceHandlerDeps) {
  const { store, registry, codec } = deps;

  const env: CheckEnv = {
    registry,
    async exists(resource: ResourceName, id: string) {
      return (await store.get(objectKey(RESOURCE_DEFS.get(resource)!, id))) !== undefined;
    },
    async all(resource: ResourceName) {
      const def = RESOURCE_DEFS.get(resource)!;
      return (await listValues(store, def)).map(({ id, value }) => ({ id, value: codec.open(def, value) }));
    },
    async credentials() {
      const def = RESOURCE_DEFS.get('consumers')!;
      const prefix = collectionPrefix(def);
      const out: Array<{ username: string; id: string; value: JsonObject }> = [];
      for (const item of (await store.list(prefix)).items) {
        const [username, sub, id, ...rest] = item.key.slice(prefix.length).split('/');
        if (sub !== 'credentials' || id === undefined || rest.length > 0 || !isPlainObject(item.value)) continue;
        out.push({ username: username!, id, value: codec.open(def, item.value) });
      }
      return out;
    },
  };
  const credentials = createCredentialHandler({ store, codec, env, consumers: RESOURCE_DEFS.get('consumers')! });

  async function validate(def: ResourceDef, id: string, value: JsonObject): Promise<void> {
    const err = await checkResource(def.name, id, structuredClone(value), env);
    if (err !== undefined) throw adminError(err);
  }

  function requireObject(body: unknown, missing: string): JsonObject {
    if (body === undefined || body === null) throw adminError(missing);
    if (!isPlainObject(body)) throw adminError(`invalid configuration: wrong type: expected object, got ${typeName(body)}`);
    return body;
  }

  /** Resolves the key and the value to check for a PUT (or a PATCH's merged value). */
  async function prepareWrite(def: ResourceDef, urlId: string | undefined, conf: JsonObject, allowTime: boolean): Promise<{ id: string; value: JsonObject }> {
    if (def.keyField === 'username') {
      if (!allowTime) checkForbidden(conf);
      if (typeof conf.username !== 'string') {
        // The schema engineer's check names the exact problem; this is only a fallback so no key is ever derived from a non-string.
        await validate(def, urlId ?? '', conf);
        throw adminError('invalid configuration: property "username" is required');
      }
      await validate(def, conf.username, conf);
      if (urlId !== undefined && urlId !== conf.username) throw adminError('wrong username');
      return { id: safeSegment(conf.username, def), value: conf };
    }
    if (def.keyField === 'plugin_name') {
      if (urlId === undefined) throw adminError('missing plugin name');
      if (!registry.get(urlId)) throw adminError('invalid plugin name');
      if (!allowTime) checkForbidden(conf);
      const value = { ...conf, id: urlId };
      await validate(def, urlId, value);
      return { id: urlId, value };
    }
    const bodyId = conf.id;
    const hasBodyId = bodyId !== undefined && bodyId !== null;
    if (urlId === undefined && !hasBodyId) throw adminError(`missing ${def.kind} id`);
    if (urlId !== undefined && hasBodyId && String(bodyId) !== urlId) throw adminError(`wrong ${def.kind} id`);
    // The URL's id is stored as a string; an id taken from the body keeps its JSON type.
    const value = { ...conf, id: urlId ?? bodyId };
    if (!allowTime) checkForbidden(value);
    const id = String(value.id);
    await validate(def, id, value);
    return { id: safeSegment(id, def), value };
  }

  async function get(def: ResourceDef, id: string | undefined, req: ResourceRequest): Promise<ResourceResponse> {
    const show = (v: JsonObject): JsonObject => codec.present(def, v, req.role);
    if (id === undefined) {
      return { status: 200, body: listResponse(def, await listItems(store, def), req.query, show) };
    }
    const item = await store.get(objectKey(def, id));
    if (!item) throw keyNotFound();
    return {
      status: 200,
      body: {
        key: item.key,
        value: show(isPlainObject(item.value) ? item.value : {}),
        createdIndex: item.createRevision,
        modifiedIndex: item.modRevision,
      },
    };
  }

  async function put(def: ResourceDef, urlId: string | undefined, req: ResourceRequest): Promise<ResourceResponse> {
    checkTtl(req.query);
    const conf = requireObject(req.body, 'missing configurations');
    const { id, value } = await prepareWrite(def, urlId, conf, false);
    return putStamped(store, codec, def, objectKey(def, id), value);
  }

  async function post(def: ResourceDef, urlId: string | undefined, req: ResourceRequest): Promise<ResourceResponse> {
    checkTtl(req.query);
    const conf = requireObject(req.body, 'missing configurations');
    if (urlId !== undefined || (conf.id !== undefined && conf.id !== null)) throw adminError(`wrong ${def.kind} id, do not need it`);
    checkForbidden(conf);
    await validate(def, '', conf);
    const id = await store.nextId();
    const key = objectKey(def, id);
    const t = now();
    const stored: JsonObject = { ...conf, id, create_time: t, update_time: t };
    await store.put(key, codec.seal(def, stored), { expectModRevision: 0 });
    return { status: 201, body: { key, value: withoutHidden(def, stored) } };
  }

  async function patch(def: ResourceDef, urlId: string | undefined, subPath: readonly string[], req: ResourceRequest): Promise<ResourceResponse> {
    checkTtl(req.query);
    if (urlId === undefined) throw adminError(`missing ${def.kind} id`);
    if (req.body === undefined) throw adminError('missing new configuration');
    const whole = subPath.length === 0;
    if (whole && !isPlainObject(req.body)) throw adminError('invalid configuration');
    const key = objectKey(def, urlId);
    const old = await store.get(key);
    if (!old) throw keyNotFound();
    const oldValue = codec.open(def, isPlainObject(old.value) ? old.value : {});
    let merged: JsonObject;
    if (whole) {
      merged = deepMerge(oldValue, req.body as JsonObject);
      // update_time moves unless the PATCH itself sets it.
      if (!present((req.body as JsonObject).update_time)) merged.update_time = now();
    } else {
      const replaced = patchPath(oldValue, subPath, req.body);
      if (!isPlainObject(replaced)) throw adminError('invalid configuration');
      merged = replaced;
      merged.update_time = now();
    }
    if (!present(merged.create_time)) merged.create_time = now();
    const { value } = await prepareWrite(def, urlId, merged, true);
    // A CompareFailedError (changed since our read) reaches the client as errors.ts maps it.
    await store.put(key, codec.seal(def, value), { expectModRevision: old.modRevision });
    return { status: 200, body: { key, value: withoutHidden(def, value) } };
  }

  async function remove(def: ResourceDef, id: string | undefined, req: ResourceRequest): Promise<ResourceResponse> {
    if (id === undefined) throw adminError(`missing ${def.kind} id`);
    if (req.query.get('force') !== 'true') await checkNotReferenced(def, id, store);
    const key = objectKey(def, id);
    if (def.name === 'consumers') {
      // A consumer's credentials live under its key; they go with it.
      const { items } = await store.list(`${key}/credentials/`);
      for (const item of items) await store.delete(item.key);
    }
    if (!(await store.delete(key))) throw keyNotFound();
    return { status: 200, body: { deleted: '1', key } };
  }

  return async function handle(req: ResourceRequest): Promise<ResourceResponse> {
    const [resource, rawId, ...subPath] = req.segments;
    if (resource === undefined || resource === '') throw adminError('not found', 'ADMIN_NOT_FOUND');
    if (resource === 'plugins' || resource === 'schema') throw adminError('not found', 'ADMIN_NOT_FOUND');
    // Portico has no L4 (stream) proxy: answer as APISIX does without apisix.stream_proxy, which tools such
    // as config dumpers recognise and skip, rather than a 404 they read as a broken Admin API.
    if (resource === 'stream_routes') throw adminError('stream mode is disabled, can not add stream routes');
    const def = RESOURCE_DEFS.get(resource);
    if (!def) throw adminError(`Unsupported resource type: ${resource}`, 'ADMIN_NOT_FOUND');
    if (def.name === 'consumers' && rawId && subPath[0] === 'credentials') {
      const credId = subPath[1];
      return credentials({ method: req.method, username: rawId, id: credId === undefined || credId === '' ? undefined : credId, query: req.query, body: req.body, role: req.role });
    }
    if (!def.methods.has(req.method)) throw adminError(`not supported \`${req.method}\` method for ${def.kind}`, 'ADMIN_METHOD_NOT_ALLOWED');
    const id = rawId === undefined || rawId === '' ? undefined : rawId;
    switch (req.method) {
      case 'GET':
        return get(def, id, req);
      case 'PUT':
        return put(def, id, req);
      case 'POST':
        return post(def, id, req);
      case 'PATCH':
        return patch(def, id, subPath, req);
      case 'DELETE':
        return remove(def, id, req);
    }
  };
}

export type ResourceHandler = ReturnType<typeof createResourceHandler>;
