/**
 * Messaging backends for pub/sub. Importing this module registers the kafka
 * scheme with defaults; the composition root (src/gateway.ts for an in-process
 * data plane, src/worker.ts in a worker) registers it again with its logger.
 * The core never imports this folder: it knows schemes only by the handlers
 * registered in core/pubsub/scheme-handler.ts.
 *
 * kafkajs and the protobuf codec (some 180 modules) load only once a config
 * has a Kafka upstream: a gateway without one never carries them, which keeps
 * the request path's process small (see the README's Performance section).
 */
import { registerSchemeHandler, type SchemeHandler } from '../core/pubsub/scheme-handler.js';
import type { KafkaPubSubOptions } from './kafka.js';

let kafka: Promise<typeof import('./kafka.js')> | undefined;
function loadKafka(): Promise<typeof import('./kafka.js')> {
  return (kafka ??= import('./kafka.js'));
}

export function registerKafkaPubSub(opts: KafkaPubSubOptions = {}): void {
  let handler: SchemeHandler | undefined;
  registerSchemeHandler(
    'kafka',
    async (request) => {
      handler ??= (await loadKafka()).createKafkaSchemeHandler(opts);
      return handler(request);
    },
    {
      // A failed load is reported by the first request that needs it.
      prepare: () => void loadKafka().catch(() => undefined),
      close: closeKafkaBackends,
    },
  );
}

/** Closes every shared Kafka connection (gateway shutdown). */
export async function closeKafkaBackends(): Promise<void> {
  if (kafka === undefined) return;
  const { sharedKafkaBackends } = await import('./kafka-client.js');
  await sharedKafkaBackends.close();
}

registerKafkaPubSub();

export type { KafkaPubSubOptions } from './kafka.js';
export type { KafkaBackend, KafkaRecord, KafkaSettings } from './kafka-client.js';
