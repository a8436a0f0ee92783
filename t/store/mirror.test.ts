/**
 * The one store mirror (src/core/snapshot/mirror.ts) that both the snapshot
 * and a worker cluster's primary keep: listing, puts, deletes and a watch's
 * full resynchronisation, by table and id.
 */
import { describe, expect, it } from 'vitest';
import { StoreMirror } from '../../src/core/snapshot/mirror.js';
import type { StoreItem } from '../../src/core/store/types.js';

const item = (key: string, value: unknown, rev: number): StoreItem => ({ key, value, createRevision: rev, modRevision: rev });

describe('store mirror', () => {
  it('keeps items by table and id, current through puts, deletes and a full resync', () => {
    const m = new StoreMirror();
    m.reset([item('/apisix/routes/1', { uri: '/a' }, 2), item('/apisix/consumers/jack/credentials/c1', { plugins: {} }, 3)], 3);
    expect(m.revision).toBe(3);
    expect([...m.table('routes').keys()]).toEqual(['1']);
    expect([...m.table('consumers').keys()]).toEqual(['jack/credentials/c1']);

    m.apply([{ type: 'put', key: '/apisix/routes/2', value: { uri: '/b' }, createRevision: 4, modRevision: 4 }, { type: 'delete', key: '/apisix/routes/1', modRevision: 5 }], 5);
    expect([...m.table('routes').entries()].map(([id, i]) => [id, i.value, i.modRevision])).toEqual([['2', { uri: '/b' }, 4]]);
    expect(m.revision).toBe(5);

    m.apply([{ type: 'reset', items: [item('/apisix/upstreams/u', { nodes: {} }, 9)] }], 9);
    expect(m.table('routes').size).toBe(0);
    expect(m.table('consumers').size).toBe(0);
    expect(m.items().map((i) => i.key)).toEqual(['/apisix/upstreams/u']);
    // A batch older than what was seen does not move the revision back.
    m.apply([], 7);
    expect(m.revision).toBe(9);
  });

  it('keeps only the tables asked for, and leaves out values that are not objects, saying which', () => {
    const ignored: string[] = [];
    const m = new StoreMirror({ tables: ['routes'], onIgnored: (key) => ignored.push(key) });
    m.reset([item('/apisix/routes/1', { uri: '/a' }, 1), item('/apisix/ssls/1', { cert: 'x' }, 1), item('/apisix/routes', 'init_dir', 1), item('/other/routes/9', {}, 1)]);
    m.apply([{ type: 'put', key: '/apisix/routes/1', value: 'not an object', createRevision: 1, modRevision: 2 }], 2);
    expect(m.table('routes').size).toBe(0);
    expect(m.table('ssls').size).toBe(0);
    expect(ignored).toEqual(['/apisix/routes/1']);
  });
});
