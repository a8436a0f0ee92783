/**
 * What a route lets its pub/sub clients do, handed from a plugin (pubsub-acl)
 * to the pub/sub session through the request data under PUBSUB_ACCESS, the way
 * kafka-proxy hands over SASL settings. The session checks every command
 * against it before the command reaches a backend. A route without it may
 * read any topic and write none.
 */
import { dataKey } from './ctx.js';

export interface PubSubAccess {
  readonly read: boolean;
  readonly write: boolean;
  /** True when the allow-list admits the topic. */
  allows(topic: string): boolean;
  /** Set when the route fixes the topic (from a path parameter): commands may leave `topic` empty or name this one. */
  readonly topic?: string;
}

export const PUBSUB_ACCESS = dataKey<PubSubAccess>('pubsub_access');
