/**
 * The `scheme: redis` upstream handler: Redis Streams through the same
 * pub/sub session and the same commands as Kafka (docs/pubsub.md). A topic is
 * a stream key with one partition, 0; offsets are entry IDs mapped to int64
 * (redis-ids.ts). An entry's `value` field is the message value, its `key`
 * field the key, every other field a header; cmd_produce writes entries the
 * same way. Groups keep their offset as the stream's consumer-group
 * last-delivered ID (XGROUP SETID), so `XINFO GROUPS` shows what was acked.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { UpstreamConf } from '../core/model.js';
import type { KafkaMessage, MessageHeader, PubSubResponseBody } from '../core/pubsub/codec.js';
import { recordsFitting } from '../core/pubsub/wire.js';
import type { SchemeHandler } from '../core/pubsub/scheme-handler.js';
import { openPubSub, type PubSubLogger } from '../core/pubsub/session.js';
import { serveSubscriptions, type SubscriptionSource } from '../core/pubsub/subscriptions.js';
import { idToOffset, offsetTimestamp, offsetToId } from './redis-ids.js';

export interface RedisPubSubOptions {
  logger?: PubSubLogger;
  /** Redis connection timeouts (ms); a command gets `commandTimeoutMs`, a blocking read its wait plus this. */
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
}

const DEFAULT_REDIS_PORT = 6379;
/** Entries read per XRANGE when the frame, not a count, is the limit. */
const FETCH_COUNT = 1000;
const KEY_FIELD = Buffer.from('key');
const VALUE_FIELD = Buffer.from('value');
const NOT_FOUND_TOPIC = 'not found topic';
const NOT_FOUND_PARTITION = 'not found partition';

class RedisBackendError extends Error {}

/** One server per upstream (its first node); a Redis Cluster is not spoken here. */
function serverOf(upstream: UpstreamConf | undefined): { host: string; port: number } | undefined {
  const nodes = upstream?.nodes;
  if (!nodes) return undefined;
  if (Array.isArray(nodes)) {
    const n = nodes[0];
    return n ? { host: n.host, port: n.port ?? DEFAULT_REDIS_PORT } : undefined;
  }
  const k = Object.keys(nodes)[0];
  if (k === undefined) return undefined;
  const m = /^(.*):(\d+)$/.exec(k);
  return m ? { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) } : { host: k, port: DEFAULT_REDIS_PORT };
}

type Entry = [id: Buffer, fields: Buffer[]];

function toMessage(e: Entry): KafkaMessage {
  const offset = idToOffset(e[0].toString());
  const m: KafkaMessage = { offset, timestamp: offsetTimestamp(offset) };
  const f = e[1];
  let headers: MessageHeader[] | undefined;
  for (let i = 0; i + 1 < f.length; i += 2) {
    const name = f[i]!;
    if (name.equals(VALUE_FIELD)) m.value = f[i + 1]!;
    else if (name.equals(KEY_FIELD)) m.key = f[i + 1]!;
    else (headers ??= []).push({ key: name.toString(), value: f[i + 1]! });
  }
  if (headers) m.headers = headers;
  return m;
}

/** XINFO's flat [name, value, ...] reply as a map. */
function pairs(reply: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out.set(String(reply[i]), reply[i + 1]);
  return out;
}

/** A Redis server: one shared connection for commands, and connections lent out for blocking reads. */
class RedisBackend {
  readonly shared: Redis;
  private readonly idle: Redis[] = [];
  private readonly all = new Set<Redis>();
  private closed = false;

  constructor(
    private readonly options: RedisOptions,
    private readonly commandTimeoutMs: number,
  ) {
    this.shared = this.connection(commandTimeoutMs);
  }

  private connection(commandTimeout: number): Redis {
    const r = new Redis({ ...this.options, commandTimeout });
    // Errors reach the command that failed; the event would otherwise be thrown.
    r.on('error', () => undefined);
    this.all.add(r);
    return r;
  }

  /** XREAD BLOCK on a lent connection: a blocked connection answers nothing else until it returns. */
  async blockingRead(key: string, after: string, count: number, waitMs: number): Promise<Entry[]> {
    if (this.closed) throw new RedisBackendError('redis client closed');
    const r = this.idle.pop() ?? this.connection(waitMs + this.commandTimeoutMs);
    try {
      const reply = (await r.callBuffer('XREAD', 'COUNT', count, 'BLOCK', waitMs, 'STREAMS', key, after)) as unknown[] | null;
      if (!reply || reply.length === 0) return [];
      // RESP2 answers [[key, entries]]; RESP3's map arrives flattened as [key, entries].
      const entries = Buffer.isBuffer(reply[0]) ? reply[1] : (reply[0] as unknown[])[1];
      return Array.isArray(entries) ? (entries as Entry[]) : [];
    } finally {
      // Idle connections beyond a few are closed: a burst of subscribers does not leave them all open.
      if (this.closed || this.idle.length >= 8) {
        this.all.delete(r);
        r.disconnect();
      } else this.idle.push(r);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.all) r.disconnect();
    this.all.clear();
    this.idle.length = 0;
  }
}

const backends = new LRUCache<string, RedisBackend>({
  max: 64,
  ttl: 10 * 60_000,
  ttlAutopurge: true,
  updateAgeOnGet: true,
  dispose: (b) => void b.close(),
});

export async function closeRedisBackends(): Promise<void> {
  const all = [...backends.values()];
  backends.clear();
  await Promise.allSettled(all.map((b) => b.close()));
}

function errorResp(message: string): PubSubResponseBody {
  return { error_resp: { code: 0, message } };
}

function reason(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  // A missing stream is Kafka's missing topic; keep the word clients already match on.
  if (/no such key/i.test(msg)) return NOT_FOUND_TOPIC;
  return msg;
}

export function createRedisSchemeHandler(opts: RedisPubSubOptions = {}): SchemeHandler {
  const logger = opts.logger;
  const commandTimeoutMs = opts.commandTimeoutMs ?? 5000;
  return async (request) => {
    const session = await openPubSub(request, logger ? { logger } : {});
    if (!session) return;
    let server = serverOf(request.ctx.upstream);
    let tls = request.ctx.upstream?.tls;
    const keyOf = (): string => (server ? `${server.host}:${server.port}#${tls ? (tls.verify ? 'tls-verify' : 'tls') : 'plain'}` : '');
    let key = keyOf();
    // The route's upstream changed (core/pubsub/follow.ts): the next command goes to the new server. The old
    // server's connections stay in the shared cache for other sessions until idle (bounded by its size and TTL).
    session.onUpstreamChange((upstream) => {
      server = serverOf(upstream);
      tls = upstream.tls;
      key = keyOf();
    });
    const backend = (): RedisBackend => {
      if (!server) throw new RedisBackendError('the upstream has no node');
      let b = backends.get(key);
      if (!b) {
        b = new RedisBackend(
          {
            host: server.host,
            port: server.port,
            tls: tls ? { rejectUnauthorized: tls.verify === true } : undefined,
            connectTimeout: opts.connectTimeoutMs ?? 3000,
            // Fail fast like the Kafka side: a client waits on each answer and can retry itself.
            maxRetriesPerRequest: 1,
            lazyConnect: true,
          },
          commandTimeoutMs,
        );
        backends.set(key, b);
      }
      return b;
    };
    const checkPartition = (partition: number): void => {
      if (partition !== 0) throw new RedisBackendError(NOT_FOUND_PARTITION);
    };

    /** -1 latest (next to be written), -2 earliest, else the first entry at or after that time, or -1. */
    async function listOffset(topic: string, partition: number, timestamp: bigint): Promise<bigint> {
      checkPartition(partition);
      const r = backend().shared;
      if (timestamp === -1n || timestamp === -2n) {
        const info = pairs(await r.call('XINFO', 'STREAM', topic));
        const next = idToOffset(String(info.get('last-generated-id') ?? '0-0')) + 1n;
        if (timestamp === -1n) return next;
        const first = info.get('first-entry');
        return Array.isArray(first) ? idToOffset(String(first[0])) : next;
      }
      const [e] = (await r.call('XRANGE', topic, `${timestamp < 0n ? 0n : timestamp}-0`, '+', 'COUNT', 1)) as Array<[string, string[]]>;
      return e ? idToOffset(e[0]) : -1n;
    }

    async function fetch(topic: string, partition: number, offset: bigint, count: number): Promise<KafkaMessage[]> {
      checkPartition(partition);
      const entries = (await backend().shared.callBuffer('XRANGE', topic, offsetToId(offset), '+', 'COUNT', count)) as Entry[];
      return entries.map(toMessage);
    }

    session.on('cmd_kafka_list_offset', async ({ topic, partition, timestamp }) => {
      try {
        return { kafka_list_offset_resp: { offset: await listOffset(topic, partition, timestamp) } };
      } catch (err) {
        return errorResp(`failed to list offset, topic: ${topic}, partition: ${partition}, err: ${reason(err)}`);
      }
    });

    session.on('cmd_kafka_fetch', async ({ topic, partition, offset }, { maxBytes }) => {
      let records: KafkaMessage[];
      try {
        records = await fetch(topic, partition, offset, FETCH_COUNT);
      } catch (err) {
        return errorResp(`failed to fetch message, topic: ${topic}, partition: ${partition}, err: ${reason(err)}`);
      }
      const n = recordsFitting(records, maxBytes);
      if (n === 0 && records.length > 0) {
        return errorResp(`failed to fetch message, topic: ${topic}, partition: ${partition}, err: MESSAGE_TOO_LARGE (offset ${records[0]!.offset} does not fit the frame limit)`);
      }
      return { kafka_fetch_resp: { messages: records.slice(0, n) } };
    });

    session.on('cmd_produce', async ({ topic, partition, acks, messages }) => {
      const fail = (why: string): PubSubResponseBody => errorResp(`failed to produce, topic: ${topic}, partition: ${partition}, err: ${why}`);
      if (partition !== 0) return fail(NOT_FOUND_PARTITION);
      // One server acknowledges every write it answers; "none" would mean not waiting, which is not offered here.
      if (!['', 'all', '-1', 'leader', '1'].includes(acks.toLowerCase())) return fail(`acks "${acks}" is not supported by redis (all or leader)`);
      if (messages.length === 0) return fail('no messages');
      let b: RedisBackend;
      try {
        b = backend();
      } catch (err) {
        return fail(reason(err));
      }
      const pipeline = b.shared.pipeline();
      for (const m of messages) {
        const fields: Array<string | Uint8Array> = [];
        if (m.key.length > 0) fields.push(KEY_FIELD, m.key);
        fields.push(VALUE_FIELD, m.value);
        for (const h of m.headers) fields.push(h.key, h.value ?? Buffer.alloc(0));
        pipeline.call('XADD', topic, m.timestamp > 0n ? `${m.timestamp}-*` : '*', ...(fields as Buffer[]));
      }
      let replies: Array<[Error | null, unknown]> | null;
      try {
        replies = await pipeline.exec();
      } catch (err) {
        return fail(reason(err));
      }
      const results = messages.map((_, i) => {
        const [err, id] = replies?.[i] ?? [new Error('no reply'), undefined];
        if (err) return { offset: -1n, error: `failed to produce, topic: ${topic}, partition: ${partition}, err: ${reason(err)}` };
        try {
          return { offset: idToOffset(String(id)) };
        } catch (e) {
          return { offset: -1n, error: reason(e) };
        }
      });
      return { produce_resp: { results } };
    });

    const source: SubscriptionSource = {
      resolveOffset: (topic, partition, offset) => (offset >= 0n ? Promise.resolve(offset) : listOffset(topic, partition, offset)),
      poll: async (topic, partition, offset, lim) => {
        const count = Math.min(lim.maxMessages, FETCH_COUNT);
        const got = await fetch(topic, partition, offset, count);
        if (got.length > 0 || lim.signal.aborted) return got;
        // XREAD takes the ID to read after: the one just below the offset asked for.
        const entries = await backend().blockingRead(topic, offsetToId(offset - 1n), count, lim.maxWaitMs);
        return entries.map(toMessage);
      },
      committed: async (group, topic, partition) => {
        checkPartition(partition);
        let groups: unknown;
        try {
          groups = await backend().shared.call('XINFO', 'GROUPS', topic);
        } catch (err) {
          if (reason(err) === NOT_FOUND_TOPIC) return undefined;
          throw err;
        }
        for (const g of Array.isArray(groups) ? groups : []) {
          const info = pairs(g);
          if (info.get('name') === group) return idToOffset(String(info.get('last-delivered-id'))) + 1n;
        }
        return undefined;
      },
      commit: async (group, topic, partition, offset) => {
        checkPartition(partition);
        const r = backend().shared;
        const last = offsetToId(offset - 1n);
        try {
          await r.call('XGROUP', 'SETID', topic, group, last);
        } catch (err) {
          if (!/NOGROUP|no such key/i.test(String(err))) throw err;
          await r.call('XGROUP', 'CREATE', topic, group, last, 'MKSTREAM');
        }
      },
    };
    serveSubscriptions(session, source);

    await session.wait();
  };
}
