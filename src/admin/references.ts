/**
 * DELETE refusals while something still points at the object (APISIX's
 * delete_checker), with APISIX's messages. Reads the store itself, so unlike
 * APISIX's worker-cache check it is not eventually consistent.
 */
import type { ConfigStore } from '../core/store/types.js';
import { adminError } from './errors.js';
import { isPlainObject, type JsonObject } from './merge.js';
import { RESOURCE_DEFS, type ResourceDef } from './resources.js';
import { listValues } from './store-access.js';

/** Does a traffic-split conf in `plugins` send traffic to upstream `id`? */
function trafficSplitUses(plugins: unknown, id: string): boolean {
  if (!isPlainObject(plugins)) return false;
  const conf = plugins['traffic-split'];
  if (!isPlainObject(conf) || !Array.isArray(conf.rules)) return false;
  for (const rule of conf.rules) {
    if (!isPlainObject(rule) || !Array.isArray(rule.weighted_upstreams)) continue;
    for (const wu of rule.weighted_upstreams) {
      if (isPlainObject(wu) && wu.upstream_id !== undefined && String(wu.upstream_id) === id) return true;
    }
  }
  return false;
}

export async function checkNotReferenced(def: ResourceDef, id: string, store: ConfigStore): Promise<void> {
  if (!def.deleteNoun) return;
  // Visit referring resources in APISIX's order: routes, services, then plugin-only referrers.
  const order: string[] = [];
  for (const r of def.referencedBy) if (!order.includes(r.from)) order.push(r.from);
  for (const r of def.pluginReferencesFrom ?? []) if (!order.includes(r.from)) order.push(r.from);
  for (const from of order) {
    const fromDef = RESOURCE_DEFS.get(from)!;
    const direct = def.referencedBy.filter((r) => r.from === from);
    const viaPlugin = def.pluginReferencesFrom?.find((r) => r.from === from);
    for (const { id: otherId, value } of await listValues(store, fromDef)) {
      for (const rule of direct) {
        const ref = (value as JsonObject)[rule.field];
        if (ref !== undefined && ref !== null && String(ref) === id) {
          throw adminError(`can not delete this ${def.deleteNoun}, ${rule.label} [${otherId}] is still using it now`);
        }
      }
      if (viaPlugin && trafficSplitUses((value as JsonObject).plugins, id)) {
        throw adminError(`can not delete this ${def.deleteNoun}, plugin in ${viaPlugin.label} [${otherId}] is still using it now`);
      }
    }
  }
}
