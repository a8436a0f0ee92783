/**
 * Store keys and listings for admin resources. A resource's objects are the
 * direct children of `/apisix/<resource>/`; deeper keys (a consumer's
 * credentials) are not objects of that resource.
 */
import { KEY_PREFIX, resourceKey } from '../core/model.js';
import type { ConfigStore, StoreItem } from '../core/store/types.js';
import { listChildren } from '../core/store/list-children.js';
import { isPlainObject, type JsonObject } from './merge.js';
import type { ResourceDef } from './resources.js';
import { withoutHidden, type ValueCodec } from './stored-value.js';

export function collectionPrefix(def: ResourceDef): string {
  return `${KEY_PREFIX}/${def.name}/`;
}

export function objectKey(def: ResourceDef, id: string): string {
  return resourceKey(def.name, id);
}

export { listChildren };

export async function listItems(store: ConfigStore, def: ResourceDef): Promise<StoreItem[]> {
  return listChildren(store, collectionPrefix(def));
}

export async function listValues(store: ConfigStore, def: ResourceDef): Promise<Array<{ id: string; value: JsonObject }>> {
  const prefix = collectionPrefix(def);
  return (await listItems(store, def)).map((i) => ({
    id: i.key.slice(prefix.length),
    value: isPlainObject(i.value) ? i.value : {},
  }));
}

/**
 * A PUT's write: keeps the object's create_time, stamps update_time, seals
 * plugin fields, and answers 201 when the key is new, else 200.
 */
export async function putStamped(
  store: ConfigStore,
  codec: ValueCodec,
  def: ResourceDef,
  key: string,
  value: JsonObject,
): Promise<{ status: number; body: { key: string; value: JsonObject } }> {
  const prev = await store.get(key);
  const prevCreate = isPlainObject(prev?.value) ? prev.value.create_time : undefined;
  const t = Math.floor(Date.now() / 1000);
  const stored: JsonObject = { ...value, create_time: typeof prevCreate === 'number' ? prevCreate : t, update_time: t };
  const item = await store.put(key, codec.seal(def, stored));
  return { status: item.createRevision === item.modRevision ? 201 : 200, body: { key, value: withoutHidden(def, stored) } };
}
