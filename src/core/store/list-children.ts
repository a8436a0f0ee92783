import type { ConfigStore, StoreItem } from './types.js';

/**
 * The items directly under `prefix` (one path segment deeper), not the
 * sub-resources below them (a consumer's credentials): a resource's objects,
 * for the Admin API and the control API alike.
 */
export async function listChildren(store: ConfigStore, prefix: string): Promise<StoreItem[]> {
  const { items } = await store.list(prefix);
  return items.filter((i) => !i.key.slice(prefix.length).includes('/') && i.key.length > prefix.length);
}
