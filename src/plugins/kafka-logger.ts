/**
 * kafka-logger (APISIX priority 403, apisix/plugins/kafka-logger.lua):
 * APISIX's log entry for each request (or, with `meta_format: origin`, the
 * request as it came), produced to `kafka_topic` in batches through the
 * shared batch processor (a batch of one is the entry itself, larger batches
 * a JSON array), with kafkajs producers shared per broker set
 * (kafka-logger/producers.ts).
 *
 * lua-resty-kafka's options map onto kafkajs: `required_acks` is the produce
 * acks, `timeout` the connect and request timeout, `meta_refresh_interval`
 * the metadata age, `tls.verify` the certificate check, `sasl_config` PLAIN or
 * SCRAM. `producer_type: sync` waits for the broker's answer before the batch
 * counts as sent (a failure is retried per `max_retry_count`); `async` hands
 * the batch over and reports failures in the log, with at most
 * `producer_max_buffering` messages outstanding (more fails the batch).
 *
 * Deliberate differences: lua-resty-kafka's async buffer tuning
 * (`producer_batch_num`, `producer_batch_size`, `producer_time_linger`) has no
 * kafkajs counterpart (each batch is one produce request), so a value other
 * than the default is refused; `api_version` 0 (messages without timestamps)
 * is refused, since kafkajs always writes the record-batch format, which
 * carries them; 1 and 2 are accepted and behave alike. kafkajs takes one SASL
 * identity per client, so every broker must have the same `sasl_config`.
 */
import { definePlugin, type PluginCleanup, type PluginInitContext, type RequestContext } from '../core/plugin/index.js';
import { BatchManager, maxPendingEntriesSchema } from './lib/batch-manager.js';
import { batchSchemaProperties, type BatchOptions } from './lib/batch-processor.js';
import { checkLogConf, compileLogConf, logMetadataProperties, logSchemaProperties, type LogConf } from './lib/log-conf.js';
import { logEntry, originalRequest } from './lib/log-entry.js';
import { initLogger, loggerAccess, loggerBeforeProxy, type LoggerCompiled } from './lib/logger-plugin.js';
import { Producers, type Mechanism, type ProducerSpec } from './kafka-logger/producers.js';

const NAME = 'kafka-logger';
type Entry = Record<string, unknown> | string;
const manager = new BatchManager<Entry>('kafka logger', NAME);
const producers = new Producers();

interface Broker {
  host: string;
  port: number;
  sasl_config?: { mechanism: Mechanism; user: string; password: string };
}

export interface KafkaLoggerConf extends LogConf, BatchOptions {
  meta_format: 'default' | 'origin';
  broker_list?: Record<string, number>;
  brokers?: Broker[];
  tls?: { verify: boolean };
  kafka_topic: string;
  producer_type: 'async' | 'sync';
  required_acks: 1 | -1;
  key?: string;
  timeout: number;
  cluster_name: number;
  producer_batch_num: number;
  producer_batch_size: number;
  producer_max_buffering: number;
  producer_time_linger: number;
  meta_refresh_interval: number;
  api_version: 0 | 1 | 2;
}

interface Compiled extends LoggerCompiled<KafkaLoggerConf> {
  readonly send: (entries: Entry[], batchMaxSize: number) => Promise<void>;
}

const schema = {
  type: 'object',
  properties: {
    meta_format: { type: 'string', default: 'default', enum: ['default', 'origin'] },
    ...logSchemaProperties,
    // deprecated, use "brokers" instead
    broker_list: {
      type: 'object',
      minProperties: 1,
      patternProperties: { '.*': { description: 'the port of kafka broker', type: 'integer', minimum: 1, maximum: 65535 } },
    },
    brokers: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: {
          host: { type: 'string', description: 'the host of kafka broker' },
          port: { type: 'integer', minimum: 1, maximum: 65535, description: 'the port of kafka broker' },
          sasl_config: {
            type: 'object',
            description: 'sasl config',
            properties: {
              mechanism: { type: 'string', default: 'PLAIN', enum: ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] },
              user: { type: 'string', description: 'user' },
              password: { type: 'string', description: 'password' },
            },
            required: ['user', 'password'],
          },
        },
        required: ['host', 'port'],
      },
      uniqueItems: true,
    },
    tls: {
      type: 'object',
      description: 'tls config for connecting to kafka brokers',
      properties: { verify: { type: 'boolean', default: false } },
    },
    kafka_topic: { type: 'string' },
    producer_type: { type: 'string', default: 'async', enum: ['async', 'sync'] },
    required_acks: { type: 'integer', default: 1, enum: [1, -1] },
    key: { type: 'string' },
    timeout: { type: 'integer', minimum: 1, default: 3 },
    cluster_name: { type: 'integer', minimum: 1, default: 1 },
    producer_batch_num: { type: 'integer', minimum: 1, default: 200 },
    producer_batch_size: { type: 'integer', minimum: 0, default: 1048576 },
    producer_max_buffering: { type: 'integer', minimum: 1, default: 50000 },
    producer_time_linger: { type: 'integer', minimum: 1, default: 1 },
    meta_refresh_interval: { type: 'integer', minimum: 1, default: 30 },
    api_version: { type: 'integer', default: 1, enum: [0, 1, 2] },
    ...batchSchemaProperties('kafka logger'),
  },
  oneOf: [{ required: ['broker_list', 'kafka_topic'] }, { required: ['brokers', 'kafka_topic'] }],
};

const metadataSchema = {
  type: 'object',
  properties: { ...logMetadataProperties, max_pending_entries: maxPendingEntriesSchema },
};

/** lua-resty-kafka async-buffer knobs kafkajs has no counterpart for, with the defaults that are accepted. */
const UNSUPPORTED: ReadonlyArray<[keyof KafkaLoggerConf, number]> = [
  ['producer_batch_num', 200],
  ['producer_batch_size', 1048576],
  ['producer_time_linger', 1],
];

function check(conf: KafkaLoggerConf): string | undefined {
  for (const [key, def] of UNSUPPORTED) {
    if (conf[key] !== undefined && conf[key] !== def) {
      return `property "${key}" is not supported by Portico's kafka-logger (kafkajs sends each batch in one produce request); remove it or set it to ${def}`;
    }
  }
  if (conf.api_version === 0) return 'property "api_version" 0 is not supported: kafkajs always writes message timestamps (use 1 or 2)';
  const sasl = (conf.brokers ?? []).map((b) => JSON.stringify(b.sasl_config ?? null));
  if (new Set(sasl).size > 1) return 'property "brokers": every broker must have the same sasl_config (kafkajs uses one SASL identity per client)';
  return checkLogConf(conf);
}

function specOf(conf: KafkaLoggerConf): ProducerSpec {
  const list = (conf.brokers ?? []).map((b) => `${b.host}:${b.port}`);
  for (const [host, port] of Object.entries(conf.broker_list ?? {})) list.push(`${host}:${port}`);
  const sasl = conf.brokers?.find((b) => b.sasl_config !== undefined)?.sasl_config;
  return {
    brokers: list,
    sasl: sasl === undefined ? undefined : { mechanism: sasl.mechanism ?? 'PLAIN', user: sasl.user, password: sasl.password },
    tls: conf.tls === undefined ? undefined : { verify: conf.tls.verify },
    clusterName: conf.cluster_name,
    timeoutMs: conf.timeout * 1000,
    metadataMaxAgeMs: conf.meta_refresh_interval * 1000,
  };
}

let logger: PluginInitContext['logger'] | undefined;

function sender(conf: KafkaLoggerConf): Compiled['send'] {
  const spec = specOf(conf);
  const brokers = spec.brokers.join(',');
  const fail = (err: unknown): Error => new Error(`failed to send data to Kafka topic: ${(err as Error).message}, brokers: ${brokers}`);
  // Messages handed to kafkajs in async mode and not yet answered.
  let outstanding = 0;
  return async (entries, batchMaxSize) => {
    const first = entries[0]!;
    const value = batchMaxSize === 1 ? (typeof first === 'string' ? first : JSON.stringify(first)) : JSON.stringify(entries);
    const record = { topic: conf.kafka_topic, acks: conf.required_acks, timeout: conf.timeout * 1000, messages: [{ key: conf.key ?? null, value }] };
    let producer;
    try {
      producer = await producers.get(spec);
    } catch (err) {
      throw fail(err);
    }
    if (conf.producer_type === 'sync') {
      try {
        await producer.send(record);
      } catch (err) {
        throw fail(err);
      }
      return;
    }
    if (outstanding >= conf.producer_max_buffering) throw fail(new Error('buffer overflow'));
    outstanding++;
    producer
      .send(record)
      .catch((err: unknown) => logger?.error(`Batch Processor[${conf.name}] ${fail(err).message}`))
      .finally(() => outstanding--);
  };
}

async function init(ctx: PluginInitContext): Promise<PluginCleanup> {
  logger = ctx.logger;
  const stop = initLogger(ctx, manager);
  return async () => {
    await stop();
    await producers.close();
  };
}

export default definePlugin({
  name: NAME,
  version: '0.1',
  priority: 403,
  schema,
  metadata_schema: metadataSchema,
  encrypt_fields: ['brokers.sasl_config.password'],
  check: (conf: KafkaLoggerConf) => check(conf),
  compile(conf: KafkaLoggerConf): Compiled {
    return { conf, log: compileLogConf(conf), send: sender(conf) };
  },
  init,
  access: loggerAccess,
  before_proxy: loggerBeforeProxy,
  log(c: Compiled, ctx: RequestContext): void {
    const entry: Entry = c.conf.meta_format === 'origin' ? originalRequest(c.conf, ctx) : logEntry(NAME, c.conf, c.log, ctx);
    manager.push(c, c.conf, ctx, entry, c.send);
  },
});
