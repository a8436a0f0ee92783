/**
 * The Kafka side of pub/sub: a group-less reader (list offsets, fetch from an
 * offset) behind an interface that does not mention kafkajs, and a pool that
 * lets every WebSocket session on the same upstream share one client.
 *
 * kafkajs's public API only reads through consumer groups, which would commit
 * offsets and rebalance; APISIX's basic-consumer does neither. So this is the
 * one module that reaches kafkajs's Cluster/Broker layer (pinned 2.2.4).
 */
import { createHash } from 'node:crypto';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import { LRUCache } from 'lru-cache';
import {
  KafkaBackendError,
  NOT_FOUND_BROKER,
  NOT_FOUND_PARTITION,
  NOT_FOUND_TOPIC,
  forgetSecret,
  registerSecret,
  toKafkaBackendError,
} from './kafka-errors.js';

export interface KafkaRecord {
  offset: bigint;
  /** Milliseconds since the epoch. */
  timestamp: bigint;
  key: Buffer | null;
  value: Buffer | null;
  /** Present only when the record has headers. */
  headers?: Array<{ key: string; value: Buffer }>;
}

export interface KafkaProduceRecord {
  key?: Uint8Array | null;
  value?: Uint8Array | null;
  headers?: ReadonlyArray<{ key: string; value?: Uint8Array | null }>;
  /** ms; 0 or absent = now. */
  timestamp?: bigint;
}

/** Kafka's acks: -1 all in-sync replicas, 1 the leader, 0 no answer at all. */
export type KafkaAcks = -1 | 0 | 1;

export interface KafkaFetchOptions {
  /** Upper bound on the key+value bytes returned (the broker may send more; the rest is dropped). */
  maxBytes: number;
  /** How long the broker may wait for data; 0 returns at once. */
  maxWaitMs: number;
}

/** A group-less Kafka reader; errors are KafkaBackendError with APISIX's words as message. */
export interface KafkaBackend {
  /** -1 = latest (high watermark), -2 = earliest, else the first offset with timestamp >= it, or -1. */
  listOffset(topic: string, partition: number, timestamp: bigint): Promise<bigint>;
  /** Records with offset >= `offset`, in order, never older ones from the same batch. */
  fetch(topic: string, partition: number, offset: bigint, opts: KafkaFetchOptions): Promise<KafkaRecord[]>;
  /**
   * Resolves once the partition holds a record at `offset` (its high watermark
   * passed it), or after `maxWaitMs`, or on abort. Sessions waiting on the same
   * partition share one watch, so idle subscribers cost one request per interval.
   */
  waitForOffset(topic: string, partition: number, offset: bigint, maxWaitMs: number, signal: AbortSignal): Promise<void>;
  /** Writes the records as one batch; resolves with the first one's offset (-1 with acks 0). All or none are written. */
  produce(topic: string, partition: number, records: readonly KafkaProduceRecord[], acks: KafkaAcks): Promise<bigint>;
  /** The group's committed offset for the partition, undefined when none. */
  committed(group: string, topic: string, partition: number): Promise<bigint | undefined>;
  /** Commits `offset` for the group as a standalone consumer (generation -1, no member id, no group membership). */
  commit(group: string, topic: string, partition: number, offset: bigint): Promise<void>;
  close(): Promise<void>;
}

export type SaslMechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

export interface KafkaSettings {
  /** Bootstrap `host:port` list. */
  brokers: string[];
  /** Present = TLS on (APISIX: any `upstream.tls` object). */
  tls?: { verify: boolean };
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
}

/** Timing knobs; defaults follow lua-resty-kafka (3 s socket timeout). */
export interface KafkaClientTuning {
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /**
   * Upper bound on one listOffset/fetch, however many brokers, retries and
   * metadata refreshes kafkajs goes through underneath; past it the caller
   * gets `not found topic` (unreachable) and the work is left to finish alone.
   */
  operationTimeoutMs?: number;
  /** How long a topic's partition leaders are trusted before asking again. */
  metadataMaxAgeMs?: number;
  clientId?: string;
  /** How often a partition someone waits on is asked for its high watermark. Default 10 ms. */
  watchIntervalMs?: number;
}

// ---- the slice of kafkajs internals used here -------------------------------

interface InternalRecord {
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: Record<string, Buffer | Buffer[] | undefined>;
  isControlRecord?: boolean;
}
interface InternalBroker {
  metadata(topics: string[]): Promise<{
    brokers: Array<{ nodeId: number }>;
    topicMetadata: Array<{ topic: string; partitionMetadata: Array<{ partitionId: number; leader: number }> }>;
  }>;
  listOffsets(req: {
    replicaId: number;
    isolationLevel: number;
    topics: Array<{ topic: string; partitions: Array<{ partition: number; timestamp: string }> }>;
  }): Promise<{ responses: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }> }>;
  produce(req: {
    acks: number;
    timeout: number;
    topicData: Array<{
      topic: string;
      partitions: Array<{
        partition: number;
        messages: Array<{ key: Buffer | null; value: Buffer | null; timestamp: number; headers: Record<string, Buffer[]> }>;
      }>;
    }>;
  }): Promise<{ topics?: Array<{ topicName: string; partitions: Array<{ partition: number; errorCode: number; baseOffset: string }> }> } | undefined>;
  offsetFetch(req: {
    groupId: string;
    topics: Array<{ topic: string; partitions: Array<{ partition: number }> }>;
  }): Promise<{ responses: Array<{ topic: string; partitions: Array<{ partition: number; offset: string; errorCode: number }> }> }>;
  offsetCommit(req: {
    groupId: string;
    groupGenerationId: number;
    memberId: string;
    topics: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>;
  }): Promise<unknown>;
  fetch(req: {
    replicaId: number;
    isolationLevel: number;
    maxWaitTime: number;
    minBytes: number;
    maxBytes: number;
    topics: Array<{ topic: string; partitions: Array<{ partition: number; fetchOffset: string; maxBytes: number }> }>;
  }): Promise<{ responses: Array<{ topicName: string; partitions: Array<{ partition: number; messages: InternalRecord[] }> }> }>;
}
interface InternalCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  isConnected(): boolean;
  refreshMetadata(): Promise<void>;
  getNodeIds(): string[];
  findBroker(q: { nodeId: string }): Promise<InternalBroker>;
  findGroupCoordinator(q: { groupId: string }): Promise<InternalBroker>;
}
interface InternalConnection {
  connect(): Promise<boolean>;
}

/**
 * kafkajs's Connection.connect() is not single-flight: concurrent callers on a
 * disconnected connection each open a socket and all but the last leak. With
 * hundreds of sessions sharing a cluster that is the normal case (the Fetch
 * connection is opened lazily by the first fetches), so connects are shared.
 */
const guarded = new WeakSet<object>();
function guardConnections(broker: InternalBroker): void {
  const pool = (broker as unknown as { connectionPool?: { pool?: InternalConnection[] } }).connectionPool?.pool;
  if (!Array.isArray(pool)) return;
  for (const c of pool) {
    if (guarded.has(c)) continue;
    guarded.add(c);
    const connect = c.connect.bind(c);
    let pending: Promise<boolean> | null = null;
    c.connect = () =>
      (pending ??= connect().finally(() => {
        pending = null;
      }));
  }
}

type ClusterFactory = (o: { metadataMaxAge: number; allowAutoTopicCreation: boolean; isolationLevel: number }) => InternalCluster;

const READ_UNCOMMITTED = 0; // lua-resty-kafka's isolation level

function createCluster(kafka: Kafka, metadataMaxAge: number): InternalCluster {
  const sym = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster');
  const factory = sym && (kafka as unknown as Record<symbol, unknown>)[sym];
  if (typeof factory !== 'function') {
    throw new Error('kafkajs internals changed: Kafka has no createCluster (Portico is built against kafkajs 2.2.4)');
  }
  // No auto-creation: a reader asking for a missing topic must get `not found topic`, not create it.
  return (factory as ClusterFactory)({ metadataMaxAge, allowAutoTopicCreation: false, isolationLevel: READ_UNCOMMITTED });
}

// ---- one backend = one kafkajs cluster ---------------------------------------

interface TopicLeaders {
  leaders: Map<number, string>;
  expiresAt: number;
}

/** Per-record overhead counted against maxBytes, roughly the protobuf framing of a KafkaMessage. */
export const RECORD_OVERHEAD_BYTES = 32;

const DEFAULT_OPERATION_TIMEOUT_MS = 5000;

class KafkajsBackend implements KafkaBackend {
  private readonly cluster: InternalCluster;
  private readonly topics = new Map<string, TopicLeaders>();
  private readonly lookups = new Map<string, Promise<TopicLeaders>>();
  private readonly metadataMaxAgeMs: number;
  private readonly inflight = new Set<Promise<unknown>>();
  private closed = false;
  private readonly saslMechanism?: string;
  private readonly operationTimeoutMs: number;
  private readonly watches: PartitionWatches;

  constructor(
    settings: KafkaSettings,
    tuning: KafkaClientTuning,
    private readonly secret?: string,
  ) {
    this.metadataMaxAgeMs = tuning.metadataMaxAgeMs ?? 5 * 60_000;
    this.saslMechanism = settings.sasl?.mechanism;
    this.operationTimeoutMs = tuning.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    const kafka = new Kafka({
      clientId: tuning.clientId ?? 'portico',
      brokers: settings.brokers,
      ssl: settings.tls ? { rejectUnauthorized: settings.tls.verify } : undefined,
      sasl: settings.sasl ? toKafkajsSasl(settings.sasl) : undefined,
      connectionTimeout: tuning.connectTimeoutMs ?? 3000,
      authenticationTimeout: tuning.connectTimeoutMs ?? 3000,
      // A broker that accepts TCP but never answers (frozen, partitioned) costs this per request,
      // and kafkajs retries or walks the broker list on top; 10 s made one command wait 20-30 s.
      requestTimeout: tuning.requestTimeoutMs ?? 3000,
      enforceRequestTimeout: true,
      // Fail fast: a WebSocket client waits on each answer and can retry itself.
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
      // kafkajs's own logs would repeat every failure per retry; errors reach the caller instead.
      logLevel: logLevel.NOTHING,
    });
    this.cluster = createCluster(kafka, this.metadataMaxAgeMs);
    this.watches = new PartitionWatches((topic, partition) => this.listOffset(topic, partition, -1n), tuning.watchIntervalMs ?? 10);
  }

  listOffset(topic: string, partition: number, timestamp: bigint): Promise<bigint> {
    return this.track(
      this.withLeader(topic, partition, async (broker) => {
        const res = await broker.listOffsets({
          replicaId: -1,
          isolationLevel: READ_UNCOMMITTED,
          topics: [{ topic, partitions: [{ partition, timestamp: timestamp.toString() }] }],
        });
        const p = res.responses[0]?.partitions[0];
        if (!p) throw new KafkaBackendError(NOT_FOUND_PARTITION);
        return BigInt(p.offset);
      }),
    );
  }

  fetch(topic: string, partition: number, offset: bigint, opts: KafkaFetchOptions): Promise<KafkaRecord[]> {
    return this.track(
      this.withLeader(topic, partition, async (broker) => {
        const res = await broker.fetch({
          replicaId: -1,
          isolationLevel: READ_UNCOMMITTED,
          maxWaitTime: opts.maxWaitMs,
          // min_bytes 0 as APISIX: the answer comes at once, so long polls never queue
          // up behind each other on the shared connection.
          minBytes: 0,
          maxBytes: opts.maxBytes,
          topics: [{ topic, partitions: [{ partition, fetchOffset: offset.toString(), maxBytes: opts.maxBytes }] }],
        });
        const messages = res.responses[0]?.partitions[0]?.messages ?? [];
        return selectRecords(messages, offset, opts.maxBytes);
      }),
    );
  }

  waitForOffset(topic: string, partition: number, offset: bigint, maxWaitMs: number, signal: AbortSignal): Promise<void> {
    return this.watches.wait(topic, partition, offset, maxWaitMs, signal);
  }

  produce(topic: string, partition: number, records: readonly KafkaProduceRecord[], acks: KafkaAcks): Promise<bigint> {
    const now = Date.now();
    const messages = records.map((r) => ({
      key: r.key && r.key.length > 0 ? toBuffer(r.key) : null,
      value: r.value ? toBuffer(r.value) : null,
      timestamp: r.timestamp && r.timestamp > 0n ? Number(r.timestamp) : now,
      headers: headersObject(r.headers),
    }));
    return this.track(
      this.withLeader(topic, partition, async (broker) => {
        const res = await broker.produce({ acks, timeout: this.operationTimeoutMs, topicData: [{ topic, partitions: [{ partition, messages }] }] });
        if (acks === 0) return -1n;
        const p = res?.topics?.[0]?.partitions[0];
        if (!p) throw new KafkaBackendError(NOT_FOUND_PARTITION);
        return BigInt(p.baseOffset);
      }),
    );
  }

  committed(group: string, topic: string, partition: number): Promise<bigint | undefined> {
    return this.track(
      this.withCoordinator(group, async (broker) => {
        const res = await broker.offsetFetch({ groupId: group, topics: [{ topic, partitions: [{ partition }] }] });
        const p = res.responses.find((r) => r.topic === topic)?.partitions.find((x) => x.partition === partition);
        const offset = p ? BigInt(p.offset) : -1n;
        return offset < 0n ? undefined : offset;
      }),
    );
  }

  commit(group: string, topic: string, partition: number, offset: bigint): Promise<void> {
    return this.track(
      this.withCoordinator(group, async (broker) => {
        // Generation -1 and no member id: Kafka's standalone-consumer commit (librdkafka's assign() +
        // commit()). The client picks its partition, so there is no group membership to keep alive.
        await broker.offsetCommit({
          groupId: group,
          groupGenerationId: -1,
          memberId: '',
          topics: [{ topic, partitions: [{ partition, offset: offset.toString() }] }],
        });
      }),
    );
  }

  private async withCoordinator<T>(group: string, op: (b: InternalBroker) => Promise<T>): Promise<T> {
    if (this.closed) throw new KafkaBackendError(NOT_FOUND_BROKER, { detail: 'kafka client closed' });
    try {
      if (!this.cluster.isConnected()) await this.cluster.connect();
      const broker = await this.cluster.findGroupCoordinator({ groupId: group });
      guardConnections(broker);
      return await op(broker);
    } catch (err) {
      throw toKafkaBackendError(err, this.saslMechanism);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watches.close();
    await Promise.allSettled([...this.inflight]);
    if (this.secret !== undefined) forgetSecret(this.secret);
    await this.cluster.disconnect().catch(() => undefined);
  }

  /**
   * Bounds `work` by operationTimeoutMs and tracks the bounded promise, so neither a
   * client nor close() waits on a silent broker longer than that. kafkajs settles
   * the abandoned request itself (request timeout), and its rejection is handled here.
   */
  private track<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new KafkaBackendError(NOT_FOUND_TOPIC, {
              unreachable: true,
              detail: `no answer from the brokers within ${this.operationTimeoutMs} ms`,
            }),
          ),
        this.operationTimeoutMs,
      );
    });
    work.catch(() => undefined);
    const p = Promise.race([work, deadline]).finally(() => clearTimeout(timer));
    this.inflight.add(p);
    const done = (): void => void this.inflight.delete(p);
    p.then(done, done);
    return p;
  }

  /** Runs `op` on the partition leader; on stale metadata, looks the leader up again and retries once. */
  private async withLeader<T>(topic: string, partition: number, op: (b: InternalBroker) => Promise<T>): Promise<T> {
    if (this.closed) throw new KafkaBackendError(NOT_FOUND_BROKER, { detail: 'kafka client closed' });
    // Only an answer built on cached metadata is worth a second try.
    const cached = this.topics.has(topic);
    try {
      return await op(await this.leader(topic, partition));
    } catch (err) {
      const e = toKafkaBackendError(err, this.saslMechanism);
      if (!cached || !e.stale || this.closed) throw e;
      this.topics.delete(topic);
      try {
        await this.cluster.refreshMetadata();
        return await op(await this.leader(topic, partition));
      } catch (err2) {
        throw toKafkaBackendError(err2, this.saslMechanism);
      }
    }
  }

  private async leader(topic: string, partition: number): Promise<InternalBroker> {
    let t = this.topics.get(topic);
    if (!t || t.expiresAt < Date.now()) {
      // One metadata request per topic however many sessions ask at once.
      let pending = this.lookups.get(topic);
      if (!pending) {
        pending = this.lookupTopic(topic).finally(() => this.lookups.delete(topic));
        this.lookups.set(topic, pending);
      }
      t = await pending;
      this.topics.set(topic, t);
    }
    const nodeId = t.leaders.get(partition);
    if (nodeId === undefined) throw new KafkaBackendError(NOT_FOUND_PARTITION);
    try {
      const broker = await this.cluster.findBroker({ nodeId });
      guardConnections(broker);
      return broker;
    } catch (err) {
      const e = toKafkaBackendError(err, this.saslMechanism);
      throw e.unreachable ? new KafkaBackendError(NOT_FOUND_BROKER, { stale: true, detail: e.detail }) : e;
    }
  }

  /**
   * Asks one broker about one topic. kafkajs's own cluster-wide metadata
   * fails for every topic when one is missing, so topics are looked up alone.
   */
  private async lookupTopic(topic: string): Promise<TopicLeaders> {
    try {
      if (!this.cluster.isConnected()) await this.cluster.connect();
      if (this.cluster.getNodeIds().length === 0) await this.cluster.refreshMetadata();
    } catch (err) {
      // lua-resty-kafka: "not found topic" when no bootstrap broker answers.
      const e = toKafkaBackendError(err, this.saslMechanism);
      throw e.unreachable ? new KafkaBackendError(NOT_FOUND_TOPIC, { unreachable: true, detail: e.detail }) : e;
    }
    let lastDetail: string | undefined;
    for (const nodeId of this.cluster.getNodeIds()) {
      try {
        const broker = await this.cluster.findBroker({ nodeId });
        guardConnections(broker);
        const md = await broker.metadata([topic]);
        const tm = md.topicMetadata.find((x) => x.topic === topic);
        if (!tm || tm.partitionMetadata.length === 0) throw new KafkaBackendError(NOT_FOUND_TOPIC);
        const known = new Set(this.cluster.getNodeIds());
        if (md.brokers.some((b) => !known.has(String(b.nodeId)))) await this.cluster.refreshMetadata();
        const leaders = new Map<number, string>();
        for (const p of tm.partitionMetadata) leaders.set(p.partitionId, String(p.leader));
        return { leaders, expiresAt: Date.now() + this.metadataMaxAgeMs };
      } catch (err) {
        const e = toKafkaBackendError(err, this.saslMechanism);
        // A protocol answer (unknown topic, auth) is the cluster's word; only an unreachable broker warrants the next one.
        if (!e.unreachable) throw e;
        lastDetail = e.detail;
      }
    }
    throw new KafkaBackendError(NOT_FOUND_TOPIC, {
      unreachable: true,
      detail: `all brokers failed in fetch topic metadata${lastDetail ? `: ${lastDetail}` : ''}`,
    });
  }
}

function toKafkajsSasl(s: NonNullable<KafkaSettings['sasl']>): SASLOptions {
  const mechanism = s.mechanism === 'PLAIN' ? 'plain' : s.mechanism === 'SCRAM-SHA-256' ? 'scram-sha-256' : 'scram-sha-512';
  return { mechanism, username: s.username, password: s.password };
}

/**
 * Keeps records at or after `from` (a batch may start earlier), skips control
 * records, and stops before `maxBytes` of payload; at least one record is kept
 * so a large message can still be seen (the caller decides whether it fits).
 */
export function selectRecords(messages: InternalRecord[], from: bigint, maxBytes: number): KafkaRecord[] {
  const out: KafkaRecord[] = [];
  let budget = maxBytes;
  for (const m of messages) {
    if (m.isControlRecord) continue;
    const offset = BigInt(m.offset);
    if (offset < from) continue;
    const size = (m.key?.length ?? 0) + (m.value?.length ?? 0) + RECORD_OVERHEAD_BYTES;
    if (out.length > 0 && size > budget) break;
    budget -= size;
    const r: KafkaRecord = { offset, timestamp: BigInt(m.timestamp), key: m.key ?? null, value: m.value ?? null };
    const headers = m.headers && headerList(m.headers);
    if (headers) r.headers = headers;
    out.push(r);
  }
  return out;
}

/** kafkajs's decoded headers ({key: value | values}) as a list, or undefined when there are none. */
function headerList(h: Record<string, Buffer | Buffer[] | undefined>): Array<{ key: string; value: Buffer }> | undefined {
  let out: Array<{ key: string; value: Buffer }> | undefined;
  for (const key in h) {
    const v = h[key];
    if (v === undefined) continue;
    out ??= [];
    if (Array.isArray(v)) for (const x of v) out.push({ key, value: x });
    else out.push({ key, value: v });
  }
  return out;
}

function headersObject(hs: KafkaProduceRecord['headers']): Record<string, Buffer[]> {
  const out: Record<string, Buffer[]> = {};
  if (hs) for (const h of hs) (out[h.key] ??= []).push(h.value ? toBuffer(h.value) : Buffer.alloc(0));
  return out;
}

function toBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Waiting for records without long-poll fetches: a Kafka broker answers the
 * requests of one connection in order, so a fetch parked for seconds would
 * hold up every other session's fetch on the shared connection. Instead, each
 * partition somebody waits on is asked for its high watermark every interval
 * (one ListOffsets however many wait), and waiters whose offset is below it
 * are released to fetch.
 */
class PartitionWatches {
  private readonly watches = new Map<string, { topic: string; partition: number; waiters: Set<{ offset: bigint; done: () => void }>; timer?: NodeJS.Timeout }>();
  private closed = false;

  constructor(
    private readonly latest: (topic: string, partition: number) => Promise<bigint>,
    private readonly intervalMs: number,
  ) {}

  wait(topic: string, partition: number, offset: bigint, maxWaitMs: number, signal: AbortSignal): Promise<void> {
    if (this.closed || signal.aborted || maxWaitMs <= 0) return Promise.resolve();
    const key = `${partition}\0${topic}`;
    let w = this.watches.get(key);
    if (!w) {
      w = { topic, partition, waiters: new Set() };
      this.watches.set(key, w);
    }
    const watch = w;
    return new Promise<void>((resolve) => {
      const waiter = {
        offset,
        done: (): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', waiter.done);
          watch.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.done, maxWaitMs);
      signal.addEventListener('abort', waiter.done, { once: true });
      watch.waiters.add(waiter);
      if (!watch.timer) this.schedule(key, watch);
    });
  }

  private schedule(key: string, w: { topic: string; partition: number; waiters: Set<{ offset: bigint; done: () => void }>; timer?: NodeJS.Timeout }): void {
    w.timer = setTimeout(async () => {
      let hw: bigint | undefined;
      try {
        hw = await this.latest(w.topic, w.partition);
      } catch {
        // The fetch that follows the wait reports the error to the subscriber.
        for (const x of [...w.waiters]) x.done();
      }
      if (hw !== undefined) for (const x of [...w.waiters]) if (x.offset < hw) x.done();
      w.timer = undefined;
      if (w.waiters.size > 0 && !this.closed) this.schedule(key, w);
      else this.watches.delete(key);
    }, this.intervalMs);
  }

  close(): void {
    this.closed = true;
    for (const w of this.watches.values()) {
      clearTimeout(w.timer);
      for (const x of [...w.waiters]) x.done();
    }
    this.watches.clear();
  }
}

/** A fresh, unshared backend. Most callers want `KafkaBackendPool.get`. */
export function createKafkaBackend(settings: KafkaSettings, tuning: KafkaClientTuning = {}): KafkaBackend {
  if (settings.sasl) registerSecret(settings.sasl.password);
  return new KafkajsBackend(settings, tuning, settings.sasl?.password);
}

// ---- sharing -------------------------------------------------------------------

/**
 * The pool key: everything that changes the connection, with the password
 * hashed so the key can be logged or inspected without leaking it.
 */
export function kafkaSettingsKey(s: KafkaSettings): string {
  const sasl = s.sasl
    ? `${s.sasl.mechanism}|${s.sasl.username}|${createHash('sha256').update(s.sasl.password).digest('base64')}`
    : '-';
  const tls = s.tls ? (s.tls.verify ? 'tls-verify' : 'tls') : 'plain';
  return `${[...s.brokers].sort().join(',')}#${tls}#${sasl}`;
}

export interface KafkaBackendPoolOptions {
  /** Distinct settings kept at once; the least recently used beyond it is closed. */
  max?: number;
  /** A backend unused for this long is closed. */
  idleMs?: number;
  tuning?: KafkaClientTuning;
  /** For tests: how backends are made. */
  factory?: (settings: KafkaSettings, tuning: KafkaClientTuning) => KafkaBackend;
  /**
   * How long a backend no session holds any more is kept after a session moved
   * off it (retire), so commands already running on it finish. Default: the
   * operation timeout plus a second.
   */
  retireGraceMs?: number;
}

/**
 * Shares one backend (one kafkajs cluster, at most two connections per broker)
 * among all sessions with the same settings. Sessions look the backend up per
 * command and never close it; the pool closes idle ones.
 */
export class KafkaBackendPool {
  private readonly cache: LRUCache<string, KafkaBackend>;
  private readonly tuning: KafkaClientTuning;
  private readonly factory: NonNullable<KafkaBackendPoolOptions['factory']>;
  /** Open sessions per settings key: a backend a session moved off is closed once nobody holds it. */
  private readonly holders = new Map<string, number>();
  private readonly retireGraceMs: number;
  /** How many backends this pool has created (a test and metrics hook). */
  created = 0;

  constructor(opts: KafkaBackendPoolOptions = {}) {
    this.tuning = opts.tuning ?? {};
    this.factory = opts.factory ?? createKafkaBackend;
    this.retireGraceMs = opts.retireGraceMs ?? (this.tuning.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS) + 1000;
    this.cache = new LRUCache<string, KafkaBackend>({
      max: opts.max ?? 256,
      ttl: opts.idleMs ?? 10 * 60_000,
      ttlAutopurge: true,
      updateAgeOnGet: true,
      dispose: (backend) => void backend.close(),
    });
  }

  /** `key` may be passed when the caller already computed `kafkaSettingsKey(settings)`. */
  get(settings: KafkaSettings, key: string = kafkaSettingsKey(settings)): KafkaBackend {
    let b = this.cache.get(key);
    if (!b) {
      b = this.factory(settings, this.tuning);
      this.created++;
      this.cache.set(key, b);
    }
    return b;
  }

  /** A session uses the backend for `key` until it calls release. */
  hold(key: string): void {
    this.holders.set(key, (this.holders.get(key) ?? 0) + 1);
  }

  /**
   * The session no longer uses `key`. With `retire` (it moved to another
   * upstream after a config change) a backend nobody holds is closed after the
   * grace period, so a route changed again and again leaves no clients or
   * broker connections behind; otherwise it stays for reuse until idle.
   */
  release(key: string, retire = false): void {
    const n = (this.holders.get(key) ?? 1) - 1;
    if (n > 0) {
      this.holders.set(key, n);
      return;
    }
    this.holders.delete(key);
    if (!retire || !this.cache.has(key)) return;
    const timer = setTimeout(() => {
      if (!this.holders.has(key)) this.cache.delete(key); // dispose closes it
    }, this.retireGraceMs);
    timer.unref();
  }

  get size(): number {
    return this.cache.size;
  }

  async close(): Promise<void> {
    const all = [...this.cache.values()];
    this.cache.clear(); // dispose closes them; wait for the closes too
    await Promise.allSettled(all.map((b) => b.close()));
  }
}

/** The process-wide pool the kafka scheme handler uses. */
export const sharedKafkaBackends = new KafkaBackendPool();
