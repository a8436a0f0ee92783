/**
 * Messaging backends for pub/sub. Importing this module registers the kafka
 * scheme with defaults, so a data plane that imports it serves Kafka routes;
 * the gateway calls `registerKafkaPubSub` again with the configured limits.
 */
import { registerSchemeHandler } from '../core/scheme-handler.js';
import { sharedKafkaBackends } from './kafka-client.js';
import { createKafkaSchemeHandler, type KafkaPubSubOptions } from './kafka.js';

export function registerKafkaPubSub(opts: KafkaPubSubOptions = {}): void {
  registerSchemeHandler('kafka', createKafkaSchemeHandler(opts));
}

/** Closes every shared Kafka connection (gateway shutdown). */
export function closeKafkaBackends(): Promise<void> {
  return sharedKafkaBackends.close();
}

registerKafkaPubSub();

export type { KafkaPubSubOptions } from './kafka.js';
export type { KafkaBackend, KafkaRecord, KafkaSettings } from './kafka-client.js';
