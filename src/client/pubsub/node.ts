/**
 * `portico/pubsub-client` in Node: the client over the `ws` package.
 *
 *   import { connectPubSub } from 'portico/pubsub-client';
 *   const client = await connectPubSub('ws://127.0.0.1:9080/kafka');
 *   for await (const m of await client.subscribe('orders', 0, { from: 'earliest' })) console.log(m.offset);
 */
import { WebSocket } from 'ws';
import { PubSubClient, type ClientOptions, type WebSocketLike } from './client.js';

export * from './client.js';
export { text } from './protocol.js';

export interface NodeClientOptions extends ClientOptions {
  /** Extra headers for the upgrade request (authentication plugins read them). */
  headers?: Record<string, string>;
}

export function connectPubSub(url: string, opts: NodeClientOptions = {}): Promise<PubSubClient> {
  const { headers, ...rest } = opts;
  return PubSubClient.connect(url, (u) => new WebSocket(u, { headers, perMessageDeflate: false }) as unknown as WebSocketLike, rest);
}
