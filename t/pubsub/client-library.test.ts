/**
 * portico/pubsub-client in Node and its CLI, against the gateway and
 * librdkafka's mock cluster: every call, errors as PubSubError, reconnect
 * with resume through a TCP relay the test cuts, and `npm run pubsub`.
 */
import { execFile, spawn } from 'node:child_process';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPubSub, ProduceError, PubSubError, text, type PubSubClient } from '../../src/client/pubsub/node.js';
import { closeKafkaBackends } from '../../src/pubsub/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { startKafkaMock, type KafkaMock } from '../helpers/kafka-mock.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let gw: TestGateway;
let mock: KafkaMock;
const clients: PubSubClient[] = [];
let url: string;

async function client(u = url, reconnect = false): Promise<PubSubClient> {
  const c = await connectPubSub(u, { reconnect: reconnect ? { maxDelayMs: 200 } : false, requestTimeoutMs: 10_000 });
  clients.push(c);
  return c;
}

/**
 * A TCP relay to the gateway whose connections the test can cut. With `batchMs`, what the gateway sends is
 * held and handed on every `batchMs` in one write, so frames sent apart reach the client in one read.
 */
async function relay(opts: { batchMs?: number } = {}): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const srv: Server = createServer((a) => {
    const b = netConnect(gw.dataPort, '127.0.0.1');
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    a.pipe(b);
    if (!opts.batchMs) {
      b.pipe(a);
      return;
    }
    let held: Buffer[] = [];
    const timer = setInterval(() => {
      if (held.length > 0 && !a.destroyed) a.write(Buffer.concat(held));
      held = [];
    }, opts.batchMs);
    b.on('data', (d: Buffer) => held.push(d));
    b.on('close', () => {
      clearInterval(timer);
      a.destroy();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${(srv.address() as AddressInfo).port}/kafka`,
    cut: () => sockets.forEach((s) => s.destroy()),
    close: () =>
      new Promise((r) => {
        sockets.forEach((s) => s.destroy());
        srv.close(() => r());
      }),
  };
}

function cli(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('npm', ['run', '-s', 'pubsub', '--', ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(stdin);
  });
}

beforeAll(async () => {
  mock = await startKafkaMock();
  gw = await startTestGateway();
  const upstream = { nodes: Object.fromEntries(mock.brokers.map((b) => [b, 1])), type: 'none', scheme: 'kafka' };
  const res = await gw.admin('PUT', '/apisix/admin/routes/kafka', { uri: '/kafka', upstream, plugins: { 'pubsub-acl': { permission: 'read_write', topics: ['lib-*', 'cli-*'] } } });
  expect(res.status, res.text).toBeLessThan(300);
  url = `ws://127.0.0.1:${gw.dataPort}/kafka`;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await gw?.close();
  await closeKafkaBackends();
  await mock?.stop();
});

describe('the client library in Node', () => {
  it('produce, list offset, fetch and subscribe; failed commands throw PubSubError with the server message', async () => {
    const c = await client();
    expect(await c.produce('lib-basic', 0, [{ key: 'k', value: 'one', headers: [{ key: 'h', value: 'v' }] }, { value: 'two' }])).toEqual([0n, 1n]);
    expect(await c.listOffset('lib-basic', 0, 'earliest')).toBe(0n);
    expect(await c.listOffset('lib-basic', 0, 'latest')).toBe(2n);
    const page = await c.fetch('lib-basic', 0, 1n);
    expect(page.map((m) => [m.offset, text(m.value)])).toEqual([[1n, 'two']]);
    const sub = await c.subscribe('lib-basic', 0, { from: 'earliest', credit: 4 });
    const it = sub[Symbol.asyncIterator]();
    const first = (await it.next()).value!;
    expect([first.offset, text(first.key), text(first.value), first.headers.map((h: { key: string; value: Uint8Array }) => [h.key, text(h.value)])]).toEqual([0n, 'k', 'one', [['h', 'v']]]);
    expect(text((await it.next()).value!.value)).toBe('two');
    await c.produce('lib-basic', 0, [{ value: 'three' }]);
    expect(text((await it.next()).value!.value)).toBe('three');
    expect(await sub.unsubscribe()).toBe(3n);

    await expect(c.fetch('secret', 0, 0n)).rejects.toThrow(new PubSubError(`permission denied: topic "secret" is not in this route's allow-list`));
    await expect(c.fetch('lib-basic', 0, 999n)).rejects.toThrow('failed to fetch message, topic: lib-basic, partition: 0, err: OFFSET_OUT_OF_RANGE');
    await expect(c.produce('other', 0, [{ value: 'x' }])).rejects.toBeInstanceOf(PubSubError);
    expect(ProduceError.prototype).toBeInstanceOf(PubSubError);
  });

  it('reconnects after the connection is cut and resumes the subscription after the last delivered offset', async () => {
    const r = await relay();
    try {
      const events: Array<string | undefined> = [];
      const c = await connectPubSub(r.url, { reconnect: { maxDelayMs: 200 }, onReconnect: (e) => events.push(e?.message) });
      clients.push(c);
      const producer = await client();
      await producer.produce('lib-resume', 0, [{ value: 'a' }, { value: 'b' }]);
      const sub = await c.subscribe('lib-resume', 0, { from: 'earliest', credit: 10 });
      const seen: string[] = [];
      const it = sub[Symbol.asyncIterator]();
      for (let i = 0; i < 2; i++) seen.push(text((await it.next()).value!.value));
      r.cut();
      await producer.produce('lib-resume', 0, [{ value: 'c' }, { value: 'd' }]);
      for (let i = 0; i < 2; i++) seen.push(text((await it.next()).value!.value));
      expect(seen).toEqual(['a', 'b', 'c', 'd']);
      expect(events).toContain(undefined);
      // Requests work again on the new connection.
      expect(await c.listOffset('lib-resume', 0, 'latest')).toBe(4n);
    } finally {
      await r.close();
    }
  });

  it('messages pushed in the same read as the subscribe answer are delivered, not dropped', async () => {
    const r = await relay({ batchMs: 400 });
    try {
      const producer = await client();
      await producer.produce('lib-one-read', 0, [{ value: 'x' }, { value: 'y' }]);
      const c = await client(r.url);
      const sub = await c.subscribe('lib-one-read', 0, { from: 'earliest', credit: 10 });
      const it = sub[Symbol.asyncIterator]();
      const got: string[] = [];
      const read = (async () => {
        for (let i = 0; i < 2; i++) got.push(text((await it.next()).value!.value));
      })();
      await Promise.race([read, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      expect(got).toEqual(['x', 'y']);
    } finally {
      await r.close();
    }
  });

  it('an unreachable gateway is a PubSubError at connect', async () => {
    await expect(connectPubSub('ws://127.0.0.1:1/kafka', { reconnect: false })).rejects.toBeInstanceOf(PubSubError);
  });

  it('resolves as portico/pubsub-client through package.json exports (the build)', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--input-type=module', '-e', "const m = await import('portico/pubsub-client'); console.log(typeof m.connectPubSub, typeof m.PubSubClient, typeof m.PubSubError)"],
        { cwd: ROOT },
        (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout.trim())),
      ),
    );
    expect(out).toBe('function function function');
  });
});

describe('npm run pubsub', () => {
  it('produce sends each stdin line and prints its offset; tail prints the values; kcat reads the same', async () => {
    const p = await cli(['produce', url, '--topic', 'cli-t', '--partition', '0'], 'alpha\nbeta\ngamma\n');
    expect(p.stderr).toBe('');
    expect(p.stdout).toBe('0\n1\n2\n');
    const t = await cli(['tail', url, '--topic', 'cli-t', '--partition', '0', '--from', 'earliest']);
    expect(t.stdout).toBe('alpha\nbeta\ngamma\n');
    const from1 = await cli(['tail', url, '--topic', 'cli-t', '--from', '1']);
    expect(from1.stdout).toBe('beta\ngamma\n');
    const kcat = await new Promise<string>((resolve, reject) =>
      execFile('kcat', ['-C', '-b', mock.brokers.join(','), '-t', 'cli-t', '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%s\n'], (e, so) => (e ? reject(e) : resolve(so))),
    );
    expect(kcat).toBe('alpha\nbeta\ngamma\n');
  });

  it('tail --follow prints messages produced after it started', async () => {
    const p = spawn('npm', ['run', '-s', 'pubsub', '--', 'tail', url, '--topic', 'cli-follow', '--from', 'latest', '--follow'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    try {
      const c = await client();
      await c.listOffset('cli-follow', 0, 'latest');
      const end = Date.now() + 15_000;
      while (!stdout.includes('late') && Date.now() < end) {
        await c.produce('cli-follow', 0, [{ value: 'late' }]);
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(stdout.split('\n')[0]).toBe('late');
    } finally {
      process.kill(-p.pid!, 'SIGKILL');
    }
  });

  it('bad usage names the problem', async () => {
    const r = await cli(['tail', url, '--topic', 't', '--from', 'yesterday']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('pubsub: --from must be earliest, latest or an offset, got yesterday\n');
  });
});
