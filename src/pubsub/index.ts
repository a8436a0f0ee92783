/**
 * Messaging backends for pub/sub. Importing this module registers every
 * scheme (kafka, redis) with defaults; the composition root (src/gateway.ts
 * for an in-process data plane, src/worker.ts in a worker) registers them
 * again with its logger through registerPubSubBackends. The core never
 * imports this folder: it knows schemes only by the handlers registered in
 * core/pubsub/scheme-handler.ts.
 *
 * A backend's client library (kafkajs, ioredis) and the protobuf codec load
 * only once a config has an upstream with its scheme: a gateway without one
 * never carries them, which keeps the request path's process small (see the
 * README's Performance section).
 */
import type { PubSubLogger } from '../core/pubsub/session.js';
import { registerSchemeHandler, type SchemeHandler } from '../core/pubsub/scheme-handler.js';
import type { KafkaPubSubOptions } from './kafka.js';
import type { RedisPubSubOptions } from './redis.js';

/**
 * Registers `scheme` with a handler module loaded on first need: `prepare`
 * starts the load when a config first names the scheme, `close` runs only if
 * it was loaded.
 */
function registerLazy<M>(scheme: string, load: () => Promise<M>, create: (m: M) => SchemeHandler, close: (m: M) => Promise<void>): () => Promise<void> {
  let mod: Promise<M> | undefined;
  const loadOnce = (): Promise<M> => (mod ??= load());
  let handler: SchemeHandler | undefined;
  const closeIt = async (): Promise<void> => {
    if (mod !== undefined) await close(await mod);
  };
  registerSchemeHandler(
    scheme,
    async (request) => {
      handler ??= create(await loadOnce());
      return handler(request);
    },
    {
      // A failed load is reported by the first request that needs it.
      prepare: () => void loadOnce().catch(() => undefined),
      close: closeIt,
    },
  );
  return closeIt;
}

let closeKafka: () => Promise<void> = async () => undefined;

export function registerKafkaPubSub(opts: KafkaPubSubOptions = {}): void {
  closeKafka = registerLazy(
    'kafka',
    () => import('./kafka.js'),
    (m) => m.createKafkaSchemeHandler(opts),
    async () => (await import('./kafka-client.js')).sharedKafkaBackends.close(),
  );
}

export function registerRedisPubSub(opts: RedisPubSubOptions = {}): void {
  registerLazy(
    'redis',
    () => import('./redis.js'),
    (m) => m.createRedisSchemeHandler(opts),
    (m) => m.closeRedisBackends(),
  );
}

/** Every messaging backend, logging through `logger`: what a process that serves the data plane calls. */
export function registerPubSubBackends(opts: { logger?: PubSubLogger } = {}): void {
  registerKafkaPubSub(opts);
  registerRedisPubSub(opts);
}

/** Closes every shared Kafka connection (gateway shutdown). */
export function closeKafkaBackends(): Promise<void> {
  return closeKafka();
}

registerPubSubBackends();

export type { KafkaPubSubOptions } from './kafka.js';
export type { RedisPubSubOptions } from './redis.js';
export type { KafkaBackend, KafkaRecord, KafkaSettings } from './kafka-client.js';
