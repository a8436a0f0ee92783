/**
 * kafka-proxy (APISIX priority 508): carries the SASL settings for the Kafka
 * connection of a `scheme: kafka` route to the pub/sub handler through the
 * request context. It never ends the request; TLS comes from upstream.tls.
 * `mechanism` is a Portico addition (APISIX only speaks PLAIN).
 */
import { definePlugin, KAFKA_ENABLE_SASL, KAFKA_SASL_MECHANISM, KAFKA_SASL_PASSWORD, KAFKA_SASL_USERNAME } from '../core/plugin/index.js';

export interface KafkaProxyConf {
  sasl?: { username: string; password: string; mechanism?: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512' };
  [extra: string]: unknown;
}

export default definePlugin<KafkaProxyConf>({
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
    ctx.setData(KAFKA_ENABLE_SASL, true);
    ctx.setData(KAFKA_SASL_USERNAME, sasl.username);
    ctx.setData(KAFKA_SASL_PASSWORD, sasl.password);
    // Confs stored before `mechanism` existed, or checked without defaults, still mean PLAIN.
    ctx.setData(KAFKA_SASL_MECHANISM, sasl.mechanism ?? 'PLAIN');
  },
});
