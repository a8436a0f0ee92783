/**
 * /apisix/admin/consumers/<username>/credentials[/<id>] (APISIX 3.7+,
 * apisix/admin/credentials.lua): auth plugin confs held under a consumer, one
 * plugin each, so a consumer can carry several keys and rotate them one at a
 * time. Stored at `/apisix/consumers/<username>/credentials/<id>`: deleting the
 * consumer deletes them, and the consumers list leaves them out.
 *
 * GET (one or the consumer's list), PUT and DELETE; POST and PATCH are 405, as
 * in APISIX. A PUT names a consumer that must exist (404 `consumer not found`),
 * checked after the value itself, in APISIX's order.
 */
import { resourceKey } from '../core/model.js';
import type { ConfigStore } from '../core/store/types.js';
import { checkCredential, type CheckEnv } from './check.js';
import type { AdminRole } from './auth.js';
import { adminError, keyNotFound } from './errors.js';
import { listResponse } from './list.js';
import { isPlainObject, type JsonObject } from './merge.js';
import type { AdminMethod, ResourceDef } from './resources.js';
import { listChildren, putStamped } from './store-access.js';
import type { ValueCodec } from './stored-value.js';

export interface CredentialRequest {
  method: AdminMethod;
  username: string;
  /** The URL's credential id, if any. */
  id: string | undefined;
  query: URLSearchParams;
  body: unknown;
  role: AdminRole;
}

export interface CredentialDeps {
  store: ConfigStore;
  codec: ValueCodec;
  env: CheckEnv;
  /** The consumers row: credentials carry plugin confs and are sealed and shown the same way. */
  consumers: ResourceDef;
}

const METHODS: ReadonlySet<AdminMethod> = new Set(['GET', 'PUT', 'DELETE']);
const SEGMENT = /^[^/]+$/;

export function credentialsPrefix(username: string): string {
  return `${resourceKey('consumers', username)}/credentials/`;
}

export function createCredentialHandler(deps: CredentialDeps) {
  const { store, codec, env, consumers: def } = deps;

  async function get(req: CredentialRequest): Promise<{ status: number; body: unknown }> {
    const show = (v: JsonObject): JsonObject => codec.present(def, v, req.role);
    const prefix = credentialsPrefix(req.username);
    if (req.id === undefined) {
      const own = await listChildren(store, prefix);
      // etcd has no directory for a consumer without credentials: APISIX answers that range with 404.
      if (own.length === 0) throw keyNotFound();
      return { status: 200, body: listResponse(def, own, req.query, show) };
    }
    const item = await store.get(prefix + req.id);
    if (!item) throw keyNotFound();
    return {
      status: 200,
      body: { key: item.key, value: show(isPlainObject(item.value) ? item.value : {}), createdIndex: item.createRevision, modifiedIndex: item.modRevision },
    };
  }

  async function put(req: CredentialRequest): Promise<{ status: number; body: unknown }> {
    if (req.query.get('ttl') !== null) throw adminError('invalid argument ttl: expiring objects are not supported by Portico');
    const conf = req.body;
    if (conf === undefined || conf === null) throw adminError('missing configurations');
    if (!isPlainObject(conf)) throw adminError('invalid configuration: wrong type: expected object');
    const bodyId = conf.id;
    const hasBodyId = bodyId !== undefined && bodyId !== null;
    if (req.id === undefined && !hasBodyId) throw adminError('missing credential id');
    if (req.id !== undefined && hasBodyId && String(bodyId) !== req.id) throw adminError('wrong credential id');
    for (const p of ['create_time', 'update_time']) if (conf[p] !== undefined && conf[p] !== false) throw adminError(`the property is forbidden:  ${p}`);
    const value: JsonObject = { ...conf, id: req.id ?? bodyId };
    const id = String(value.id);
    const err = await checkCredential(req.username, id, structuredClone(value), env);
    if (err !== undefined) throw adminError(err);
    // The key is one path segment under the consumer; the schema's second id form is a full sub path.
    if (!SEGMENT.test(id) || id === '.' || id === '..') throw adminError('invalid configuration: property "id" validation failed: object matches none of the required');
    if ((await store.get(resourceKey('consumers', req.username))) === undefined) throw adminError('consumer not found', 'ADMIN_NOT_FOUND');
    return putStamped(store, codec, def, credentialsPrefix(req.username) + id, value);
  }

  async function remove(req: CredentialRequest): Promise<{ status: number; body: unknown }> {
    if (req.id === undefined) throw adminError('missing credential id');
    const key = credentialsPrefix(req.username) + req.id;
    if (!(await store.delete(key))) throw keyNotFound();
    return { status: 200, body: { deleted: '1', key } };
  }

  return async function handle(req: CredentialRequest): Promise<{ status: number; body: unknown }> {
    if (!METHODS.has(req.method)) throw adminError(`not supported \`${req.method}\` method for credential`, 'ADMIN_METHOD_NOT_ALLOWED');
    switch (req.method) {
      case 'GET':
        return get(req);
      case 'PUT':
        return put(req);
      default:
        return remove(req);
    }
  };
}
