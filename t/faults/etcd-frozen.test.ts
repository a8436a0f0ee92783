/**
 * A frozen etcd (SIGSTOP: its sockets still accept and buffer, nothing
 * answers) gets bounded answers: every Admin API call answers within
 * deployment.etcd.timeout, and a write answered as failed never lands when
 * etcd resumes. Where a write was sent and its outcome cannot be learned, the
 * answer is 504 naming the key (docs/reliability.md says which answer means what).
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { EtcdStore } from '../../src/core/store/etcd.js';
import { StoreOutcomeUnknownError, StoreUnavailableError } from '../../src/core/store/types.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const TIMEOUT_S = 2;
let etcd: EtcdServer;
const freeze = () => {
  etcd.proc.kill('SIGSTOP');
  // Stopped before the test goes on (state T in /proc).
  for (let i = 0; i < 100 && !/^\d+ \(.*\) T/.test(readFileSync(`/proc/${etcd.proc.pid}/stat`, 'utf8')); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
};
const thaw = () => etcd.proc.kill('SIGCONT');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  thaw();
  await etcd?.stop();
});

describe('the Admin API over a frozen etcd', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      config: { deployment: { config_provider: 'etcd', etcd: { host: [etcd.endpoint], prefix: '/frozen-admin', timeout: TIMEOUT_S } } },
    });
  });
  afterAll(async () => {
    thaw();
    await gw?.close();
  });

  test('reads and writes answer 503 within the timeout, and the refused write never lands after etcd resumes', async () => {
    const route = { uri: '/frozen', upstream: { nodes: { '127.0.0.1:1980': 1 } } };
    expect((await gw.admin('PUT', '/apisix/admin/routes/before', route)).status).toBe(201);
    freeze();
    try {
      const calls = [
        ['PUT', '/apisix/admin/routes/during', route],
        ['POST', '/apisix/admin/routes', route],
        ['PATCH', '/apisix/admin/routes/before', { desc: 'patched' }],
        ['GET', '/apisix/admin/routes', undefined],
      ] as const;
      const answers = await Promise.all(
        calls.map(async ([method, path, body]) => {
          const t0 = Date.now();
          const res = await gw.admin(method, path, body);
          return { method, status: res.status, ms: Date.now() - t0, msg: String(res.body?.error_msg ?? res.text) };
        }),
      );
      for (const a of answers) {
        expect(a.ms, `${a.method} took ${a.ms} ms`).toBeLessThan(TIMEOUT_S * 1000 + 1_000);
        // Each first reads, which fails: nothing was sent, so nothing can land (503, not 504).
        expect(a.status, `${a.method}: ${a.msg}`).toBe(503);
      }
    } finally {
      thaw();
    }
    await sleep(1_500);
    expect((await gw.admin('GET', '/apisix/admin/routes/during')).status).toBe(404);
    expect((await gw.admin('GET', '/apisix/admin/routes')).body.total).toBe(1);
    const before = await gw.admin('GET', '/apisix/admin/routes/before');
    expect(before.status).toBe(200);
    expect(before.body.value.desc).toBeUndefined();
  }, 30_000);

  test('a DELETE that needs no read sends its write: unanswered, it is 504 naming the key, within the timeout', async () => {
    const route = { uri: '/gone', upstream: { nodes: { '127.0.0.1:1980': 1 } } };
    expect((await gw.admin('PUT', '/apisix/admin/routes/gone', route)).status).toBe(201);
    freeze();
    const t0 = Date.now();
    let res;
    try {
      res = await gw.admin('DELETE', '/apisix/admin/routes/gone');
    } finally {
      thaw();
    }
    expect(Date.now() - t0).toBeLessThan(TIMEOUT_S * 1000 + 1_000);
    expect(res.status).toBe(504);
    expect(res.body.error_msg).toMatch(/^the write to \/apisix\/routes\/gone may or may not have been applied: /);
  }, 30_000);
});

describe('a write sent to a frozen etcd is fenced', () => {
  let store: EtcdStore;
  beforeEach(() => {
    store = new EtcdStore({ hosts: [etcd.endpoint], prefix: '/frozen-store', timeout: 3 });
  });
  afterEach(async () => {
    thaw();
    await store?.close();
  });

  test('unanswered, and the check unanswered too: outcome unknown, named, within the timeout', async () => {
    await store.get('/apisix/routes/x'); // connected before the freeze
    freeze();
    const t0 = Date.now();
    let err: unknown;
    try {
      await store.put('/apisix/routes/unknown', { uri: '/u' });
    } catch (e) {
      err = e;
    } finally {
      thaw();
    }
    expect(Date.now() - t0).toBeLessThan(4_000);
    expect(err).toBeInstanceOf(StoreOutcomeUnknownError);
    expect((err as Error).message).toMatch(/^the write to \/apisix\/routes\/unknown may or may not have been applied: /);
  }, 20_000);

  test('etcd resumes before the check: a write that failed its compare is answered "not applied", and stays so', async () => {
    const first = await store.put('/apisix/routes/cas', { uri: '/1' });
    freeze();
    // Resumed after the write's share of the deadline (70%), before the check's end.
    const resume = setTimeout(thaw, 2_400);
    let err: unknown;
    try {
      await store.put('/apisix/routes/cas', { uri: '/2' }, { expectModRevision: first.modRevision - 1 });
    } catch (e) {
      err = e;
    } finally {
      clearTimeout(resume);
      thaw();
    }
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(err).not.toBeInstanceOf(StoreOutcomeUnknownError);
    expect((err as Error).message).toMatch(/the write to \/apisix\/routes\/cas was not applied and never will be/);
    await sleep(500);
    expect((await store.get('/apisix/routes/cas'))?.value).toEqual({ uri: '/1' });
  }, 20_000);

  test('etcd resumes before the check: the answer is what etcd holds, then and later', async () => {
    // Whether etcd applies a write whose client gave up (grpc-js cancels the stream) depends on what it reads
    // first when it resumes; the fence's read tells which, and either answer must match the store.
    await store.get('/apisix/routes/late'); // connected before the freeze
    freeze();
    const resume = setTimeout(thaw, 2_400);
    let answer: 'applied' | 'not applied';
    try {
      const item = await store.put('/apisix/routes/late', { uri: '/late' });
      expect(item.value).toEqual({ uri: '/late' });
      answer = 'applied';
    } catch (err) {
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect(err).not.toBeInstanceOf(StoreOutcomeUnknownError);
      answer = 'not applied';
    } finally {
      clearTimeout(resume);
      thaw();
    }
    await sleep(500);
    const held = await store.get('/apisix/routes/late');
    expect(held === undefined ? 'not applied' : 'applied').toBe(answer);
  }, 20_000);
});
