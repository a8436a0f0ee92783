/**
 * A real Kafka wire-protocol broker for tests: librdkafka's mock cluster,
 * hosted inside a `kcat` process (Debian's kcat links librdkafka). It speaks
 * the genuine protocol (ApiVersions, Metadata, ListOffsets, Fetch, Produce),
 * but has no SASL or TLS, creates topics on first mention (4 partitions) and
 * answers every timestamp lookup with -1; tests that touch those paths say so.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Kafka, logLevel, type Producer } from 'kafkajs';

export interface MockMessage {
  key?: string | Buffer | null;
  value: string | Buffer | null;
  /** Milliseconds since the epoch; the producer's clock when absent. */
  timestamp?: bigint;
}

export interface KafkaMock {
  /** `host:port` of every mock broker, as the bootstrap list. */
  readonly brokers: string[];
  readonly ports: number[];
  readonly pid: number;
  /** Produces with kafkajs to one partition (0 by default), in order, one request per call. */
  produce(topic: string, messages: MockMessage[], partition?: number): Promise<void>;
  /**
   * Produces with a separate `kcat -P` process (librdkafka's own producer),
   * one message per line, `key<TAB>value` when the line holds a tab.
   */
  produceWithKcat(topic: string, lines: string[], partition?: number): Promise<void>;
  /** Established TCP connections from process `pid` (default: this one) to the mock's brokers. */
  connectionsFrom(pid?: number): number;
  stop(): Promise<void>;
}

const BOOTSTRAP_RE = /bootstrap\.servers=([0-9.:,]+)/;

export async function startKafkaMock(opts: { brokers?: number; topic?: string } = {}): Promise<KafkaMock> {
  const numBrokers = opts.brokers ?? 3;
  // The mock cluster lives as long as this producer does; stdin stays open so it never ends on its own.
  const child = spawn(
    'kcat',
    ['-P', '-b', 'localhost:1', '-X', `test.mock.num.brokers=${numBrokers}`, '-t', opts.topic ?? 'portico-mock', '-d', 'mock'],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  const brokers = await new Promise<string[]>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => fail(new Error(`kcat mock did not report bootstrap.servers within 10s: ${log.slice(0, 500)}`)), 10_000);
    const onData = (chunk: Buffer): void => {
      log += chunk.toString('utf8');
      const m = BOOTSTRAP_RE.exec(log);
      if (m) {
        cleanup();
        resolve(m[1]!.split(','));
      }
    };
    const onExit = (code: number | null): void => fail(new Error(`kcat exited early (code ${code}): ${log.slice(0, 500)}`));
    const onError = (err: Error): void => fail(err);
    function fail(err: Error): void {
      cleanup();
      child.kill('SIGKILL');
      reject(err);
    }
    function cleanup(): void {
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    }
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
  // Keep draining the debug log so kcat never blocks on a full pipe.
  child.stderr!.resume();
  const ports = brokers.map((b) => Number(b.slice(b.lastIndexOf(':') + 1)));

    let producer: Producer | undefined;
  async function getProducer(): Promise<Producer> {
    if (!producer) {
      const kafka = new Kafka({ clientId: 'portico-test-producer', brokers, logLevel: logLevel.NOTHING });
      producer = kafka.producer({ allowAutoTopicCreation: true });
      await producer.connect();
    }
    return producer;
  }

  return {
    brokers,
    ports,
    pid: child.pid!,
    async produce(topic, messages, partition = 0) {
      const p = await getProducer();
      for (const m of messages) {
        await p.send({
          topic,
          acks: -1,
          messages: [{ key: m.key ?? null, value: m.value, partition, timestamp: m.timestamp?.toString() }],
        });
      }
    },
    produceWithKcat(topic, lines, partition = 0) {
      return new Promise((resolve, reject) => {
        const p = execFile(
          'kcat',
          ['-P', '-b', brokers.join(','), '-t', topic, '-p', String(partition), '-K', '\t'],
          { timeout: 15_000 },
          (err) => (err ? reject(err) : resolve()),
        );
        p.stdin!.end(lines.map((l) => `${l}\n`).join(''));
      });
    },
    connectionsFrom(pid = process.pid) {
      return countEstablished(pid, new Set(ports));
    },
    async stop() {
      await producer?.disconnect().catch(() => undefined);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        process.kill(child.pid!, 'SIGKILL');
        await exited;
      }
    },
  };
}

/** Counts sockets owned by `pid` that are ESTABLISHED towards one of `ports` (Linux /proc). */
function countEstablished(pid: number, ports: Set<number>): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed while we looked
    }
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) inodes.add(m[1]!);
  }
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const remPort = parseInt(f[2]!.split(':')[1]!, 16);
      if (f[3] === '01' && ports.has(remPort) && inodes.has(f[9]!)) n++;
    }
  }
  return n;
}
