/**
 * Consumers, their groups and their credentials, compiled; and the hand-over
 * to auth plugins, which build their credential lookup tables from the
 * consumer list whenever it changes (plugin `consumers()`).
 */
import type { Logger } from 'pino';
import type { ConsumerConf, PluginConfMap } from '../model.js';
import type { ChainEntry } from '../plugin/pipeline.js';
import { SkipObject, type PluginConfCompiler } from './plugins.js';
import type { CompiledConsumer, CompiledConsumerGroup, CompiledCredential, PluginLookup } from './types.js';

/** `<username>/credentials/<id>` under /apisix/consumers/. */
export const CREDENTIAL_ID = /^([^/]+)\/credentials\/([^/]+)$/;

export function compileConsumer(
  plugins: PluginConfCompiler,
  conf: ConsumerConf,
  revKey: string,
  group: CompiledConsumerGroup | undefined,
  groupMissing: boolean,
): CompiledConsumer {
  if (typeof conf.username !== 'string') throw new SkipObject('consumer without username');
  // Auth plugins read the validated confs (defaults filled, decrypted), not the stored ones; never the group's.
  const validated: PluginConfMap = {};
  const own = plugins.entries(conf.plugins, 'consumer', true, validated);
  let entries: readonly ChainEntry[] = own;
  if (group !== undefined && group.entries.length > 0) {
    // APISIX's merge_consumer_route: the group's plugins, then the consumer's over them.
    const byName = new Map<string, ChainEntry>();
    for (const e of group.entries) byName.set(e.name, e);
    for (const e of own) byName.set(e.name, e);
    entries = [...byName.values()];
  }
  return { revKey, conf: { ...conf, plugins: validated }, entries, groupMissing };
}

export function compileCredential(
  plugins: PluginConfCompiler,
  owner: CompiledConsumer,
  id: string,
  value: Record<string, unknown>,
  revKey: string,
): CompiledCredential {
  const validated: PluginConfMap = {};
  plugins.entries(value.plugins as PluginConfMap | undefined, 'consumer', true, validated);
  // The consumer's own plugins still merge by username (consumers map); `plugins` here is what the auth plugin matches on.
  return { revKey, conf: { ...owner.conf, plugins: validated, credential_id: id } };
}

/** Gives every plugin with a `consumers()` hook the whole list: consumers, then credentials. */
export function feedConsumers(
  registry: PluginLookup,
  logger: Logger,
  consumers: ReadonlyMap<string, CompiledConsumer>,
  credentials: ReadonlyMap<string, CompiledCredential>,
): void {
  const list = [...consumers.values()].map((c) => c.conf);
  for (const c of credentials.values()) list.push(c.conf);
  const all = registry as PluginLookup & { list?: () => Array<{ name: string }> };
  const names = new Set<string>();
  for (const c of list) for (const n of Object.keys(c.plugins ?? {})) names.add(n);
  for (const def of all.list?.() ?? []) names.add(def.name);
  for (const name of names) {
    const def = registry.get(name);
    if (!def?.consumers) continue;
    try {
      // Every consumer: a plugin may name one that has no conf of its own (key-auth's anonymous_consumer).
      def.consumers(list);
    } catch (err) {
      logger.error({ err, plugin: name }, 'config: plugin failed to load consumers');
    }
  }
}
