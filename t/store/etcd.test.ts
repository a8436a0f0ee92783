/** The etcd store against a real etcd started for the test. */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { EtcdStore } from '../../src/core/store/etcd.js';
import { CompareFailedError, type WatchEvent } from '../../src/core/store/types.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';

let etcd: EtcdServer;
let store: EtcdStore;
beforeAll(async () => {
  etcd = await startEtcd();
  store = new EtcdStore({ hosts: [etcd.endpoint], prefix: '/portico-test', timeout: 5 });
});
afterAll(async () => {
  await store?.close();
  await etcd?.stop();
});

test('put, get, list, compare-and-set and delete keep etcd revisions', async () => {
  const a = await store.put('/apisix/routes/1', { uri: '/a' }, { expectModRevision: 0 });
  expect(a.createRevision).toBe(a.modRevision);
  await expect(store.put('/apisix/routes/1', { uri: '/x' }, { expectModRevision: 0 })).rejects.toBeInstanceOf(CompareFailedError);
  const a2 = await store.put('/apisix/routes/1', { uri: '/a2' }, { expectModRevision: a.modRevision });
  expect(a2.createRevision).toBe(a.createRevision);
  expect(a2.modRevision).toBeGreaterThan(a.modRevision);
  await store.put('/apisix/routes/2', { uri: '/b' });
  expect(await store.get('/apisix/routes/1')).toEqual({ key: '/apisix/routes/1', value: { uri: '/a2' }, createRevision: a.createRevision, modRevision: a2.modRevision });
  const list = await store.list('/apisix/routes/');
  expect(list.items.map((i) => i.key)).toEqual(['/apisix/routes/1', '/apisix/routes/2']);
  expect(list.revision).toBeGreaterThanOrEqual(a2.modRevision + 1);
  await expect(store.delete('/apisix/routes/2', { expectModRevision: 1 })).rejects.toBeInstanceOf(CompareFailedError);
  expect(await store.delete('/apisix/routes/2')).toBe(true);
  expect(await store.delete('/apisix/routes/2')).toBe(false);
  const id1 = await store.nextId();
  const id2 = await store.nextId();
  expect(id1).toMatch(/^\d{20}$/);
  expect(BigInt(id2)).toBeGreaterThan(BigInt(id1));
});

test('a watch from a past revision replays what happened since, then streams', async () => {
  const listed = await store.list('/apisix/');
  await store.put('/apisix/upstreams/9', { nodes: {} }); // after the list: must arrive
  const seen: WatchEvent[] = [];
  const w = store.watch('/apisix/', listed.revision + 1, (events) => seen.push(...events));
  await store.delete('/apisix/upstreams/9');
  for (let i = 0; i < 50 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  w.close();
  expect(seen.map((e) => `${e.type} ${'key' in e ? e.key : ''}`)).toEqual(['put /apisix/upstreams/9', 'delete /apisix/upstreams/9']);
});

test('etcd down: calls fail with a store error instead of hanging or crashing', async () => {
  const dead = new EtcdStore({ hosts: ['http://127.0.0.1:1'], prefix: '/apisix', timeout: 1 });
  await expect(dead.get('/apisix/routes/1')).rejects.toThrow(/^etcd: /);
  await dead.close();
});

test('a watch whose start revision was compacted resynchronises with a full reset, then streams', async () => {
  const { Etcd3 } = await import('etcd3');
  const admin = new Etcd3({ hosts: [etcd.endpoint] });
  try {
    await store.put('/apisix/services/keep', { name: 'keep' });
    const old = await store.put('/apisix/services/gone', { name: 'gone' });
    await store.delete('/apisix/services/gone');
    const now = await store.list('/apisix/services/');
    await admin.kv.compact({ revision: String(now.revision) });

    const batches: Array<{ events: WatchEvent[]; revision: number }> = [];
    const w = store.watch('/apisix/services/', old.modRevision, (events, revision) => batches.push({ events, revision }));
    for (let i = 0; i < 100 && batches.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    const first = batches[0]!.events;
    expect(first).toHaveLength(1);
    expect(first[0]!.type).toBe('reset');
    const items = first[0]!.type === 'reset' ? first[0]!.items : [];
    expect(items.map((i) => i.key)).toEqual(['/apisix/services/keep']);

    await store.put('/apisix/services/later', { name: 'later' });
    for (let i = 0; i < 100 && batches.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    w.close();
    expect(batches[1]!.events.map((e) => `${e.type} ${'key' in e ? e.key : ''}`)).toEqual(['put /apisix/services/later']);
  } finally {
    admin.close();
  }
});
