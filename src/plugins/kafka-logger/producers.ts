/**
 * kafka-logger's kafkajs producers, one per broker set (brokers, SASL, TLS,
 * cluster_name, timeouts), shared by every conf that names the same set, as
 * APISIX shares lua-resty-kafka producers so messages spread evenly over
 * partitions. Connected on first use; a failed connect is retried on the next
 * batch. Closed with the plugin.
 */
import { Kafka, logLevel, Partitioners, type Producer, type SASLOptions } from 'kafkajs';

export type Mechanism = 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512';

export interface ProducerSpec {
  brokers: string[];
  sasl?: { mechanism: Mechanism; user: string; password: string };
  tls?: { verify: boolean };
  clusterName: number;
  timeoutMs: number;
  metadataMaxAgeMs: number;
}

interface Shared {
  producer: Producer;
  connected: Promise<void> | undefined;
}

function saslOf(s: NonNullable<ProducerSpec['sasl']>): SASLOptions {
  switch (s.mechanism) {
    case 'PLAIN':
      return { mechanism: 'plain', username: s.user, password: s.password };
    case 'SCRAM-SHA-256':
      return { mechanism: 'scram-sha-256', username: s.user, password: s.password };
    case 'SCRAM-SHA-512':
      return { mechanism: 'scram-sha-512', username: s.user, password: s.password };
  }
}

export class Producers {
  private readonly shared = new Map<string, Shared>();

  /** The connected producer for `spec`, created and connected on first use. */
  async get(spec: ProducerSpec): Promise<Producer> {
    const key = JSON.stringify(spec);
    let s = this.shared.get(key);
    if (s === undefined) {
      const kafka = new Kafka({
        clientId: `portico-kafka-logger-${spec.clusterName}`,
        brokers: spec.brokers,
        ssl: spec.tls === undefined ? undefined : { rejectUnauthorized: spec.tls.verify },
        sasl: spec.sasl === undefined ? undefined : saslOf(spec.sasl),
        connectionTimeout: spec.timeoutMs,
        requestTimeout: spec.timeoutMs,
        // The batch processor retries (max_retry_count); kafkajs's own retries would only hold a batch longer.
        retry: { retries: 0 },
        logLevel: logLevel.NOTHING,
      });
      s = {
        producer: kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, metadataMaxAge: spec.metadataMaxAgeMs, allowAutoTopicCreation: true }),
        connected: undefined,
      };
      this.shared.set(key, s);
    }
    const shared = s;
    shared.connected ??= shared.producer.connect().catch((err: unknown) => {
      shared.connected = undefined;
      throw err;
    });
    await shared.connected;
    return shared.producer;
  }

  async close(): Promise<void> {
    const all = [...this.shared.values()];
    this.shared.clear();
    await Promise.all(all.map((s) => s.producer.disconnect().catch(() => undefined)));
  }
}
