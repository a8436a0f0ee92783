import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { EmbeddedStore, openEmbeddedStore } from '../../src/core/store/embedded.js';
import { MemoryStore } from '../../src/core/store/memory.js';
import { CompareFailedError, type WatchEvent } from '../../src/core/store/types.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'portico-store-'));
  dirs.push(d);
  return d;
}

describe('embedded store', () => {
  test('revisions follow etcd: one counter, create and modify revisions per item', async () => {
    const s = new MemoryStore();
    const a = await s.put('/apisix/routes/1', { uri: '/a' });
    const b = await s.put('/apisix/routes/2', { uri: '/b' });
    const a2 = await s.put('/apisix/routes/1', { uri: '/a2' });
    expect([a.createRevision, a.modRevision]).toEqual([1, 1]);
    expect([b.createRevision, b.modRevision]).toEqual([2, 2]);
    expect([a2.createRevision, a2.modRevision]).toEqual([1, 3]);
    expect(await s.get('/apisix/routes/1')).toEqual({ key: '/apisix/routes/1', value: { uri: '/a2' }, createRevision: 1, modRevision: 3 });
    const list = await s.list('/apisix/routes/');
    expect(list.revision).toBe(3);
    expect(list.items.map((i) => i.key)).toEqual(['/apisix/routes/1', '/apisix/routes/2']);
    // A prefix does not leak into a sibling whose name merely starts the same way.
    await s.put('/apisix/routes_x/1', {});
    expect((await s.list('/apisix/routes/')).items).toHaveLength(2);
    await s.close();
  });

  test('compare-and-set rejects a stale revision and changes nothing', async () => {
    const s = new MemoryStore();
    const item = await s.put('/k', 1, { expectModRevision: 0 });
    await expect(s.put('/k', 2, { expectModRevision: 0 })).rejects.toBeInstanceOf(CompareFailedError);
    await expect(s.put('/k', 2, { expectModRevision: item.modRevision + 5 })).rejects.toThrow('value changed before overwritten');
    expect((await s.get('/k'))?.value).toBe(1);
    await s.put('/k', 3, { expectModRevision: item.modRevision });
    await expect(s.delete('/k', { expectModRevision: 1 })).rejects.toBeInstanceOf(CompareFailedError);
    expect(await s.delete('/k')).toBe(true);
    expect(await s.delete('/k')).toBe(false);
    await s.close();
  });

  test('watch replays from a past revision, then streams live changes under its prefix only', async () => {
    const s = new MemoryStore();
    await s.put('/apisix/routes/1', 'a');
    const listed = await s.list('/apisix/');
    await s.put('/apisix/routes/2', 'b'); // between list and watch: must be replayed
    const seen: WatchEvent[] = [];
    const w = s.watch('/apisix/', listed.revision + 1, (events) => seen.push(...events));
    await s.put('/other/x', 'ignored');
    await s.delete('/apisix/routes/1');
    await new Promise((r) => setTimeout(r, 5));
    expect(seen.map((e) => `${e.type} ${'key' in e ? e.key : ''} ${'modRevision' in e ? e.modRevision : ''}`)).toEqual(['put /apisix/routes/2 2', 'delete /apisix/routes/1 4']);
    w.close();
    await s.put('/apisix/routes/3', 'c');
    expect(seen).toHaveLength(2);
    await s.close();
  });

  test('ids for POST are 20-digit, increasing, and survive a reopen', async () => {
    const dir = tempDir();
    const s = openEmbeddedStore(dir);
    const a = await s.nextId();
    const b = await s.nextId();
    expect(a).toMatch(/^\d{20}$/);
    expect(BigInt(b)).toBeGreaterThan(BigInt(a));
    await s.put('/apisix/upstreams/1', { nodes: {} });
    await s.close();
    const again = openEmbeddedStore(dir);
    expect(BigInt(await again.nextId())).toBeGreaterThan(BigInt(b));
    expect((await again.get('/apisix/upstreams/1'))?.value).toEqual({ nodes: {} });
    const next = await again.put('/apisix/upstreams/2', {});
    expect(next.modRevision).toBe(2);
    await again.close();
  });

  test('a closed store answers with a clear error instead of crashing', async () => {
    const s = new EmbeddedStore(':memory:');
    await s.close();
    await expect(s.get('/x')).rejects.toThrow('config store is closed');
    await expect(s.put('/x', 1)).rejects.toThrow('config store is closed');
  });
});
