/**
 * Per-command access checks, run by the session before a handler sees the
 * command, so a refused command never reaches the broker. What a route grants
 * comes from the request data (see core/plugin/pubsub-access.ts); a route that grants
 * nothing explicitly may read any topic and write none, because APISIX's
 * routes were read-only and a produce command must not open writes on them.
 */
import type { PubSubAccess } from '../plugin/pubsub-access.js';
import type { CommandName, CommandParams } from './codec.js';

export type { PubSubAccess };

export const READ_ONLY_ACCESS: PubSubAccess = Object.freeze({ read: true, write: false, allows: () => true });

/** Commands that name a topic, and what they need. The others act on a subscription already checked. */
const NEEDS: Partial<Record<CommandName, 'read' | 'write'>> = {
  cmd_kafka_list_offset: 'read',
  cmd_kafka_fetch: 'read',
  cmd_subscribe: 'read',
  cmd_produce: 'write',
};

function grants(a: PubSubAccess): string {
  return a.read ? (a.write ? 'read and write' : 'read only') : a.write ? 'write only' : 'nothing';
}

/**
 * Why `command` is refused, or undefined. A route with a fixed topic fills an
 * empty `topic` in the params with it (the one place params are changed).
 */
export function accessDenied<K extends CommandName>(access: PubSubAccess, command: K, params: CommandParams[K]): string | undefined {
  const need = NEEDS[command];
  if (need === undefined) return undefined;
  if (!access[need]) return `permission denied: ${command} needs ${need} access, and this route grants ${grants(access)}`;
  const p = params as { topic: string };
  if (access.topic !== undefined) {
    if (p.topic === '') p.topic = access.topic;
    else if (p.topic !== access.topic) return `permission denied: topic "${p.topic}" is not this route's topic "${access.topic}"`;
  }
  if (!access.allows(p.topic)) return `permission denied: topic "${p.topic}" is not in this route's allow-list`;
  return undefined;
}
