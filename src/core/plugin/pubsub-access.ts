/**
 * What a route lets its pub/sub clients do, handed from a plugin (pubsub-acl)
 * to the pub/sub session through `ctx.data[PUBSUB_ACCESS]`, the way
 * kafka-proxy hands over SASL settings. The session checks every command
 * against it before the command reaches a backend. A route without it may
 * read any topic and write none.
 */
export const PUBSUB_ACCESS = 'pubsub_access';

export interface PubSubAccess {
  readonly read: boolean;
  readonly write: boolean;
  /** True when the allow-list admits the topic. */
  allows(topic: string): boolean;
  /** Set when the route fixes the topic (from a path parameter): commands may leave `topic` empty or name this one. */
  readonly topic?: string;
}

/** Reads the access a plugin left in ctx.data, or undefined when none did. */
export function pubsubAccessOf(data: Readonly<Record<string, unknown>>): PubSubAccess | undefined {
  const a = data[PUBSUB_ACCESS];
  if (typeof a !== 'object' || a === null) return undefined;
  const x = a as Partial<PubSubAccess>;
  return typeof x.read === 'boolean' && typeof x.write === 'boolean' && typeof x.allows === 'function' ? (a as PubSubAccess) : undefined;
}
