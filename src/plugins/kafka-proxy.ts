/**
 * kafka-proxy (APISIX priority 508): carries the SASL settings for the Kafka
 * connection of a `scheme: kafka` route to the pub/sub handler through the
 * request context. It never ends the request; TLS comes from upstream.tls.
 * `mechanism` is a Portico addition (APISIX only speaks PLAIN).
 */
import type { PluginDefinition } from '../core/plugin/contract.js';

export interface KafkaProxyConf {
  sasl?: { username: string; password: string; mechanism?: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512' };
  [extra: string]: unknown;
}

const kafkaProxy: PluginDefinition<KafkaProxyConf> = {
  name: 'kafka-proxy',
  priority: 508,
  version: '0.1',
  schema: {
    type: 'object',
    properties: {
      sasl: {
        type: 'object',
        properties: {
          username: { type: 'string' },
          password: { type: 'string' },
          mechanism: { type: 'string', enum: ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'], default: 'PLAIN' },
        },
        required: ['username', 'password'],
      },
    },
  },
  encrypt_fields: ['sasl.password'],

  access(conf, ctx) {
    const sasl = conf.sasl;
    if (!sasl) return;
    ctx.data.kafka_consumer_enable_sasl = true;
    ctx.data.kafka_consumer_sasl_username = sasl.username;
    ctx.data.kafka_consumer_sasl_password = sasl.password;
    // Confs stored before `mechanism` existed, or checked without defaults, still mean PLAIN.
    ctx.data.kafka_consumer_sasl_mechanism = sasl.mechanism ?? 'PLAIN';
  },
};

export default kafkaProxy;
