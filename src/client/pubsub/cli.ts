/**
 * The pub/sub command line, on the client library:
 *
 *   npm run pubsub -- tail URL --topic T [--partition 0] [--from earliest|latest|OFFSET] [--follow] [--group G] [--header k:v]...
 *   npm run pubsub -- produce URL --topic T [--partition 0] [--acks all|leader|none] [--header k:v]...
 *
 * `tail` prints one message value a line: up to the end of the partition as
 * it was when tail started, or, with --follow, forever (pushed as they come).
 * `produce` sends each line of standard input as a message and prints its offset.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { connectPubSub, PubSubError, text, type PubSubClient } from './node.js';

const usage = `usage:
  pubsub tail URL --topic T [--partition 0] [--from earliest|latest|OFFSET] [--follow] [--group G] [--header k:v]...
  pubsub produce URL --topic T [--partition 0] [--acks all|leader|none] [--header k:v]...`;

function fail(msg: string): never {
  process.stderr.write(`pubsub: ${msg}\n`);
  process.exit(1);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    topic: { type: 'string' },
    partition: { type: 'string', default: '0' },
    from: { type: 'string', default: 'latest' },
    follow: { type: 'boolean', short: 'f', default: false },
    group: { type: 'string' },
    acks: { type: 'string', default: 'all' },
    header: { type: 'string', multiple: true, default: [] },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const [command, url] = positionals;
if ((command !== 'tail' && command !== 'produce') || !url || !values.topic) fail(usage);
const topic = values.topic;
const partition = Number(values.partition);
if (!Number.isInteger(partition) || partition < 0) fail(`--partition must be a non-negative integer, got ${values.partition}`);
const headers: Record<string, string> = {};
for (const h of values.header) {
  const i = h.indexOf(':');
  if (i <= 0) fail(`--header must look like name:value, got ${h}`);
  headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}
const from = values.from === 'earliest' || values.from === 'latest' ? values.from : /^\d+$/.test(values.from) ? BigInt(values.from) : fail(`--from must be earliest, latest or an offset, got ${values.from}`);
const acks = values.acks;
if (acks !== 'all' && acks !== 'leader' && acks !== 'none') fail(`--acks must be all, leader or none, got ${acks}`);

const out = (line: string): Promise<void> => new Promise((resolve) => (process.stdout.write(`${line}\n`) ? resolve() : process.stdout.once('drain', resolve)));

async function tail(client: PubSubClient): Promise<void> {
  if (values.follow) {
    const sub = await client.subscribe(topic, partition, { from, group: values.group });
    for await (const m of sub) {
      await out(text(m.value));
      if (values.group) await sub.ack(m.offset);
    }
    return;
  }
  const end = await client.listOffset(topic, partition, 'latest');
  let offset = typeof from === 'bigint' ? from : await client.listOffset(topic, partition, from);
  while (offset < end) {
    const page = await client.fetch(topic, partition, offset);
    if (page.length === 0) break;
    for (const m of page) {
      if (m.offset >= end) return;
      await out(text(m.value));
    }
    offset = page[page.length - 1]!.offset + 1n;
  }
}

async function produce(client: PubSubClient): Promise<void> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let batch: string[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const offsets = await client.produce(topic, partition, batch.map((value) => ({ value })), { acks: acks as 'all' | 'leader' | 'none' });
    batch = [];
    for (const o of offsets) await out(String(o));
  };
  for await (const line of lines) {
    batch.push(line);
    if (batch.length >= 100) await flush();
  }
  await flush();
}

const client = await connectPubSub(url, { headers, reconnect: values.follow === true }).catch((e: Error) => fail(e.message));
process.once('SIGINT', () => {
  client.close();
  process.exit(130);
});
try {
  await (command === 'tail' ? tail(client) : produce(client));
  client.close();
} catch (e) {
  client.close();
  fail(e instanceof PubSubError ? e.message : String(e));
}
