/**
 * The `scheme: kafka` upstream handler (APISIX's apisix/pubsub/kafka.lua):
 * upgrades the matched request to a pub/sub WebSocket and answers
 * cmd_kafka_list_offset and cmd_kafka_fetch from the upstream's brokers, and
 * Portico's cmd_produce and subscriptions (core/pubsub/subscriptions.ts).
 */
import type { RequestContext } from '../core/plugin/ctx.js';
import { KAFKA_ENABLE_SASL, KAFKA_SASL_MECHANISM, KAFKA_SASL_PASSWORD, KAFKA_SASL_USERNAME } from '../core/plugin/ctx-names.js';
import type { UpstreamConf } from '../core/model.js';
import { openPubSub, type PubSubLogger, type PubSubSessionOptions } from '../core/pubsub/session.js';
import type { PubSubResponseBody } from '../core/pubsub/codec.js';
import { recordsFitting } from '../core/pubsub/wire.js';
import type { SchemeHandler } from '../core/pubsub/scheme-handler.js';
import { serveSubscriptions, type SubscriptionSource } from '../core/pubsub/subscriptions.js';
import {
  kafkaSettingsKey,
  type KafkaAcks,
  sharedKafkaBackends,
  type KafkaBackend,
  type KafkaBackendPool,
  type KafkaSettings,
  type SaslMechanism,
} from './kafka-client.js';
import { NOT_FOUND_TOPIC, toKafkaBackendError, unreachableCause } from './kafka-errors.js';

export interface KafkaPubSubOptions {
  /** Overrides config `apisix.pubsub.max_frame_size` (which the data plane passes per request). */
  maxFrameSize?: number;
  /** Overrides config `apisix.pubsub.idle_timeout`, in ms; 0 = never. */
  idleTimeoutMs?: number;
  /** Where backends come from; the process-wide shared pool by default. */
  backends?: Pick<KafkaBackendPool, 'get'> & Partial<Pick<KafkaBackendPool, 'hold' | 'release'>>;
  logger?: PubSubLogger;
}

/** lua-resty-kafka's max_wait_ms for fetch. */
const FETCH_MAX_WAIT_MS = 100;
/** Kafka's partition_max_bytes in APISIX; frames are the tighter limit anyway. */
const FETCH_MAX_BYTES = 10 * 1024 * 1024;
const DEFAULT_KAFKA_PORT = 9092;

const SASL_MECHANISMS: ReadonlySet<string> = new Set<SaslMechanism>(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']);

/** `host:port` per upstream node, in order; weights and the balancer type mean nothing to Kafka. */
export function brokersOf(upstream: UpstreamConf | undefined): string[] {
  const nodes = upstream?.nodes;
  if (!nodes) return [];
  if (Array.isArray(nodes)) return nodes.map((n) => `${n.host}:${n.port ?? DEFAULT_KAFKA_PORT}`);
  return Object.keys(nodes).map((k) => (/:\d+$/.test(k) ? k : `${k}:${DEFAULT_KAFKA_PORT}`));
}

/** Connection settings from the upstream and what kafka-proxy left in the request's data; a string is a setup error. */
export function kafkaSettingsOf(ctx: RequestContext, upstream: UpstreamConf | undefined = ctx.upstream): KafkaSettings | string {
  const settings: KafkaSettings = { brokers: brokersOf(upstream) };
  const tls = upstream?.tls;
  // APISIX: any tls object turns TLS on; verify defaults to false.
  if (tls) settings.tls = { verify: tls.verify === true };
  if (ctx.getData(KAFKA_ENABLE_SASL)) {
    const mech = ctx.getData(KAFKA_SASL_MECHANISM)?.toUpperCase() ?? 'PLAIN';
    if (!SASL_MECHANISMS.has(mech)) return `unsupported SASL mechanism: ${mech}`;
    settings.sasl = {
      mechanism: mech as SaslMechanism,
      username: ctx.getData(KAFKA_SASL_USERNAME) ?? '',
      password: ctx.getData(KAFKA_SASL_PASSWORD) ?? '',
    };
  }
  return settings;
}

function errorResp(message: string): PubSubResponseBody {
  return { error_resp: { code: 0, message } };
}

/** CmdProduce.acks → Kafka's acks, or undefined when not one of the documented words. */
export function parseAcks(acks: string): KafkaAcks | undefined {
  switch (acks.toLowerCase()) {
    case '':
    case 'all':
    case '-1':
      return -1;
    case 'leader':
    case '1':
      return 1;
    case 'none':
    case '0':
      return 0;
    default:
      return undefined;
  }
}

/** Throws a setup problem (a string from backend()) as an error the subscription reports. */
function need(b: KafkaBackend | string): KafkaBackend {
  if (typeof b === 'string') throw new Error(b);
  return b;
}

export function createKafkaSchemeHandler(opts: KafkaPubSubOptions = {}): SchemeHandler {
  const backends = opts.backends ?? sharedKafkaBackends;
  const logger = opts.logger;
  const overrides: Partial<PubSubSessionOptions> = {};
  if (opts.maxFrameSize !== undefined) overrides.maxFrameSize = opts.maxFrameSize;
  if (opts.idleTimeoutMs !== undefined) overrides.idleTimeoutMs = opts.idleTimeoutMs;
  if (logger) overrides.logger = logger;

  return async (request) => {
    // Refuses a plain HTTP request with 400 {"error_msg": "failed to initialize pubsub module: a WebSocket upgrade is required (...)"}.
    const session = await openPubSub(request, overrides);
    if (!session) return;
    const maxFrameSize = overrides.maxFrameSize ?? request.pubsub.maxFrameSize;

    let settings = kafkaSettingsOf(request.ctx);
    // Computed once per session (and per upstream change): hashing the password per command would be wasted work.
    let key = typeof settings === 'string' ? '' : kafkaSettingsKey(settings);
    if (key !== '') backends.hold?.(key);
    // The route's upstream changed (core/pubsub/follow.ts): the next command goes to the new brokers, and the
    // old client is closed once no session holds it; a command already running finishes on the old one.
    session.onUpstreamChange((upstream) => {
      const next = kafkaSettingsOf(request.ctx, upstream);
      const nextKey = typeof next === 'string' ? '' : kafkaSettingsKey(next);
      settings = next;
      if (nextKey === key) return;
      if (nextKey !== '') backends.hold?.(nextKey);
      if (key !== '') backends.release?.(key, true);
      logger?.debug(`kafka pubsub session of route ${request.ctx.route.id} now uses ${typeof next === 'string' ? next : next.brokers.join(',')}`);
      key = nextKey;
    });
    void session.wait().then(() => {
      if (key !== '') backends.release?.(key);
    });
    const backend = (): KafkaBackend | string => {
      if (typeof settings === 'string') return settings;
      if (settings.brokers.length === 0) return NOT_FOUND_TOPIC;
      return backends.get(settings, key);
    };
    const failed = (what: string, topic: string, partition: number, err: unknown): PubSubResponseBody => {
      const e = toKafkaBackendError(err);
      if (e.detail) logger?.warn(`kafka ${what} failed, route: ${request.ctx.route.id}, topic: ${topic}, partition: ${partition}, err: ${e.message}, detail: ${e.detail}`);
      // APISIX's words first (clients match them), then the cause when the brokers could not be reached.
      const cause = unreachableCause(e);
      return errorResp(`failed to ${what}, topic: ${topic}, partition: ${partition}, err: ${e.message}${cause ? ` (${cause})` : ''}`);
    };

    session.on('cmd_kafka_list_offset', async ({ topic, partition, timestamp }) => {
      const b = backend();
      if (typeof b === 'string') return errorResp(`failed to list offset, topic: ${topic}, partition: ${partition}, err: ${b}`);
      try {
        return { kafka_list_offset_resp: { offset: await b.listOffset(topic, partition, timestamp) } };
      } catch (err) {
        return failed('list offset', topic, partition, err);
      }
    });

    session.on('cmd_kafka_fetch', async ({ topic, partition, offset }, { maxBytes }) => {
      const b = backend();
      if (typeof b === 'string') return errorResp(`failed to fetch message, topic: ${topic}, partition: ${partition}, err: ${b}`);
      let records;
      try {
        records = await b.fetch(topic, partition, offset, { maxBytes: Math.min(maxBytes, FETCH_MAX_BYTES), maxWaitMs: FETCH_MAX_WAIT_MS });
      } catch (err) {
        return failed('fetch message', topic, partition, err);
      }
      // Cut to the frame: APISIX would send an oversized frame and lose the session;
      // here the client gets fewer messages and continues from the next offset.
      // The records go to the encoder as they are: no per-message copy.
      const n = recordsFitting(records, maxBytes);
      if (n === 0 && records.length > 0) {
        return errorResp(
          `failed to fetch message, topic: ${topic}, partition: ${partition}, err: MESSAGE_TOO_LARGE ` +
            `(offset ${records[0]!.offset} does not fit the ${maxFrameSize}-byte frame limit)`,
        );
      }
      return { kafka_fetch_resp: { messages: n === records.length ? records : records.slice(0, n) } };
    });

    session.on('cmd_produce', async ({ topic, partition, acks, messages }) => {
      const b = backend();
      if (typeof b === 'string') return errorResp(`failed to produce, topic: ${topic}, partition: ${partition}, err: ${b}`);
      const kafkaAcks = parseAcks(acks);
      if (kafkaAcks === undefined) return errorResp(`failed to produce: acks must be all, leader or none (or -1, 1, 0), got "${acks}"`);
      if (messages.length === 0) return errorResp(`failed to produce, topic: ${topic}, partition: ${partition}, err: no messages`);
      try {
        const base = await b.produce(topic, partition, messages, kafkaAcks);
        // One batch: Kafka writes it whole, so offsets follow the first one.
        return { produce_resp: { results: messages.map((_, i) => ({ offset: base < 0n ? -1n : base + BigInt(i) })) } };
      } catch (err) {
        const e = failed('produce', topic, partition, err);
        const message = 'error_resp' in e ? e.error_resp.message : 'failed to produce';
        return { produce_resp: { results: messages.map(() => ({ offset: -1n, error: message })) } };
      }
    });

    const source: SubscriptionSource = {
      resolveOffset: async (topic, partition, offset) => {
        if (offset >= 0n) return offset;
        return need(backend()).listOffset(topic, partition, offset);
      },
      poll: async (topic, partition, offset, lim) => {
        const b = need(backend());
        const opts = { maxBytes: lim.maxBytes, maxWaitMs: 0 };
        let records = await b.fetch(topic, partition, offset, opts);
        if (records.length === 0) {
          await b.waitForOffset(topic, partition, offset, lim.maxWaitMs, lim.signal);
          if (lim.signal.aborted) return [];
          // The upstream may have changed while waiting: read from the current brokers.
          records = await need(backend()).fetch(topic, partition, offset, opts);
        }
        return records.length > lim.maxMessages ? records.slice(0, lim.maxMessages) : records;
      },
      committed: (group, topic, partition) => need(backend()).committed(group, topic, partition),
      commit: (group, topic, partition, offset) => need(backend()).commit(group, topic, partition, offset),
    };
    serveSubscriptions(session, source);

    await session.wait();
  };
}
