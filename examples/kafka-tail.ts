/**
 * kafka-tail: follow one Kafka partition through a Portico (or APISIX)
 * pub/sub route, like `tail -f`.
 *
 *   node --import tsx examples/kafka-tail.ts ws://127.0.0.1:9080/kafka \
 *     --topic T --partition 0 [--from earliest|latest|<offset>] [--header k:v]... \
 *     [--interval 500] [--count N]
 *
 * Prints `start offset: N`, then one line per message: offset<TAB>key<TAB>value.
 * The server keeps no position, so the client asks for the start offset once
 * and then moves its own offset forward after every fetch.
 */
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import {
  decodeResponse,
  encodeRequest,
  type PubSubRequestBody,
  type PubSubResponse,
} from '../src/core/pubsub/codec.js';

const usage = 'usage: kafka-tail <ws-url> --topic T [--partition 0] [--from earliest|latest|<offset>] [--header k:v]... [--interval ms] [--count N]';

function fail(msg: string): never {
  process.stderr.write(`kafka-tail: ${msg}\n`);
  process.exit(1);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    topic: { type: 'string' },
    partition: { type: 'string', default: '0' },
    from: { type: 'string', default: 'latest' },
    header: { type: 'string', multiple: true, default: [] },
    interval: { type: 'string', default: '500' },
    count: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const url = positionals[0];
if (!url || !values.topic) fail(usage);
const topic = values.topic;
const partition = Number(values.partition);
if (!Number.isInteger(partition) || partition < 0) fail(`--partition must be a non-negative integer, got ${values.partition}`);
const interval = Number(values.interval);
const limit = values.count === undefined ? Infinity : Number(values.count);
const headers: Record<string, string> = {};
for (const h of values.header) {
  const i = h.indexOf(':');
  if (i <= 0) fail(`--header must look like name:value, got ${h}`);
  headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
}

/** One request at a time is all a tail needs; the sequence still ties each answer to its question. */
class Client {
  private seq = 0n;
  private pending: { sequence: bigint; resolve: (r: PubSubResponse) => void; reject: (e: Error) => void } | undefined;
  constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const resp = decodeResponse(data);
      const p = this.pending;
      if (p && resp.sequence === p.sequence) {
        this.pending = undefined;
        p.resolve(resp);
      }
    });
    ws.on('close', (code: number) => this.pending?.reject(new Error(`connection closed (${code})`)));
  }
  request(body: PubSubRequestBody): Promise<PubSubResponse> {
    const sequence = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending = { sequence, resolve, reject };
      this.ws.send(encodeRequest({ ...body, sequence }));
    });
  }
}

function check(resp: PubSubResponse): PubSubResponse {
  if ('error_resp' in resp) fail(resp.error_resp.message);
  return resp;
}

const ws = new WebSocket(url, { headers, perMessageDeflate: false });
ws.on('unexpected-response', (_req, res) => fail(`server answered HTTP ${res.statusCode} instead of upgrading`));
ws.on('error', (err) => fail(err.message));
await new Promise<void>((resolve) => ws.once('open', () => resolve()));
const client = new Client(ws);

let offset: bigint;
if (values.from === 'earliest' || values.from === 'latest') {
  const resp = check(await client.request({ cmd_kafka_list_offset: { topic, partition, timestamp: values.from === 'earliest' ? -2n : -1n } }));
  if (!('kafka_list_offset_resp' in resp)) fail('unexpected answer to list offset');
  offset = resp.kafka_list_offset_resp.offset;
} else if (/^\d+$/.test(values.from)) {
  offset = BigInt(values.from);
} else {
  fail(`--from must be earliest, latest or an offset, got ${values.from}`);
}
process.stdout.write(`start offset: ${offset}\n`);

let printed = 0;
const stop = (): void => {
  ws.close();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

while (printed < limit) {
  const resp = check(await client.request({ cmd_kafka_fetch: { topic, partition, offset } }));
  if (!('kafka_fetch_resp' in resp)) fail('unexpected answer to fetch');
  let got = 0;
  for (const m of resp.kafka_fetch_resp.messages) {
    // A fetch may start at the beginning of a batch, before the offset asked for.
    if (m.offset < offset) continue;
    process.stdout.write(`${m.offset}\t${Buffer.from(m.key ?? []).toString()}\t${Buffer.from(m.value ?? []).toString()}\n`);
    offset = m.offset + 1n;
    got++;
    if (++printed >= limit) break;
  }
  if (got === 0) await new Promise((r) => setTimeout(r, interval));
}
stop();
