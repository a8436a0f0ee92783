/**
 * Per-request data one part of the gateway leaves for another, under the
 * names APISIX's ctx uses: kafka-proxy writes the SASL settings that the
 * Kafka pub/sub backend (src/pubsub/kafka.ts) connects with
 * (apisix/plugins/kafka-proxy.lua, apisix/pubsub/kafka.lua).
 */
import { dataKey } from './ctx.js';

export const KAFKA_ENABLE_SASL = dataKey<boolean>('kafka_consumer_enable_sasl');
export const KAFKA_SASL_USERNAME = dataKey<string>('kafka_consumer_sasl_username');
export const KAFKA_SASL_PASSWORD = dataKey<string>('kafka_consumer_sasl_password');
export const KAFKA_SASL_MECHANISM = dataKey<string>('kafka_consumer_sasl_mechanism');
