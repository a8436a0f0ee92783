/**
 * `portico/pubsub-client` in a browser: the client over the page's WebSocket.
 * Loads as a plain ES module (no bundler): serve the build's
 * dist/src/ directory and import client/pubsub/browser.js from it.
 */
import { PubSubClient, type ClientOptions, type WebSocketLike } from './client.js';

export * from './client.js';
export { text } from './protocol.js';

type WebSocketCtor = new (url: string) => WebSocketLike;

export function connectPubSub(url: string, opts: ClientOptions = {}): Promise<PubSubClient> {
  const Ctor = (globalThis as unknown as { WebSocket?: WebSocketCtor }).WebSocket;
  if (!Ctor) return Promise.reject(new Error('this environment has no WebSocket'));
  return PubSubClient.connect(url, (u) => new Ctor(u), opts);
}
