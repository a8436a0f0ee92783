/**
 * examples/kafka-tail.ts run as a real child process against a fake pub/sub
 * Kafka endpoint (canned records served through a real PubSubSession).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fakeKafka, startSchemeServer, type FakeKafka, type SchemeTestServer } from '../helpers/pubsub-client.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const children: ChildProcess[] = [];

function tail(args: string[]): { child: ChildProcess; out: () => string; err: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/kafka-tail.ts', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exit };
}

async function until(cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('examples/kafka-tail.ts', () => {
  let kafka: FakeKafka;
  let srv: SchemeTestServer;
  const seenHeaders: Array<string | undefined> = [];
  beforeAll(async () => {
    kafka = fakeKafka({ demo: Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: `hello ${i}` })) });
    srv = await startSchemeServer(async (request) => {
      seenHeaders.push(request.ctx.requestHeader('x-token'));
      return kafka.handler(request);
    });
  });
  afterAll(() => srv.close());

  it('lists the earliest offset, prints every record, then follows new ones', async () => {
    const t = tail([`${srv.wsUrl}/kafka`, '--topic', 'demo', '--partition', '0', '--from', 'earliest', '--count', '7', '--interval', '50', '--header', 'X-Token: s3cret']);
    await until(() => t.out().split('\n').length >= 7);
    expect(t.out()).toBe(['start offset: 0', ...[0, 1, 2, 3, 4].map((i) => `${i}\tk${i}\thello ${i}`), ''].join('\n'));
    kafka.append('demo', { key: 'late', value: 'world' });
    kafka.append('demo', { value: 'no key' });
    expect(await t.exit).toBe(0);
    expect(t.out().split('\n').slice(6)).toEqual(['5\tlate\tworld', '6\t\tno key', '']);
    expect(seenHeaders).toContain('s3cret');
  });

  it('--from latest starts at the end; --from <offset> starts there', async () => {
    const latest = tail([`${srv.wsUrl}/kafka`, '--topic', 'demo', '--from', 'latest', '--count', '1', '--interval', '50']);
    await until(() => latest.out().includes('start offset:'));
    const start = Number(/start offset: (\d+)/.exec(latest.out())![1]);
    kafka.append('demo', { key: 'x', value: 'fresh' });
    expect(await latest.exit).toBe(0);
    expect(latest.out()).toBe(`start offset: ${start}\n${start}\tx\tfresh\n`);

    const from = tail([`${srv.wsUrl}/kafka`, '--topic', 'demo', '--from', '3', '--count', '2']);
    expect(await from.exit).toBe(0);
    expect(from.out()).toBe('start offset: 3\n3\tk3\thello 3\n4\tk4\thello 4\n');
  });

  it('a server error is printed and ends the tail with status 1', async () => {
    const t = tail([`${srv.wsUrl}/kafka`, '--topic', 'nope', '--from', 'earliest']);
    expect(await t.exit).toBe(1);
    expect(t.err()).toBe('kafka-tail: failed to list offset, topic: nope, partition: 0, err: not found topic\n');
  });

  it('a URL that does not upgrade is reported with its HTTP status', async () => {
    const http = createServer((_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"error_msg":"404 Route Not Found"}\n'));
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    try {
      const t = tail([`ws://127.0.0.1:${(http.address() as AddressInfo).port}/nowhere`, '--topic', 'demo']);
      expect(await t.exit).toBe(1);
      expect(t.err()).toBe('kafka-tail: server answered HTTP 404 instead of upgrading\n');
    } finally {
      http.closeAllConnections();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it('bad arguments are refused before connecting', async () => {
    const t = tail([`${srv.wsUrl}/kafka`, '--topic', 'demo', '--from', 'yesterday']);
    expect(await t.exit).toBe(1);
    expect(t.err()).toBe('kafka-tail: --from must be earliest, latest or an offset, got yesterday\n');
  });
});
