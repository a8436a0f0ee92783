/**
 * The text store behind http-logger's batches (src/plugins/lib/text-store.ts):
 * entries pushed as strings come back as their UTF-8 bytes, one after the
 * other, across buffer growth, batch cuts and a dropped head.
 */
import { describe, expect, it } from 'vitest';
import { TextStore } from '../../../src/plugins/lib/text-store.js';

const texts = (batch: { count: number; entry(i: number): Buffer }): string[] => Array.from({ length: batch.count }, (_, i) => batch.entry(i).toString('utf8'));

describe('TextStore', () => {
  it('keeps entries as UTF-8 bytes, multi-byte text and a buffer that must grow included', () => {
    const store = new TextStore();
    const big = '\u{1f600}'.repeat(40_000); // 160 kB of UTF-8 from 80k UTF-16 units: past the first buffer
    const entries = ['{"a":1}', 'caf\u00e9 \u20ac', big, '', 'last'];
    for (const e of entries) store.push(e);
    expect(store.length).toBe(5);
    const batch = store.take();
    expect(store.length).toBe(0);
    expect(texts(batch)).toEqual(entries);
    expect(batch.join(0x5b, 0x2c, 0x5d).toString('utf8')).toBe(`[${entries.join(',')}]`);
    expect(batch.join(undefined, 0x0a, undefined).toString('utf8')).toBe(entries.join('\n'));
  });

  it('cuts batches apart: a small one copied out, a large one taking the buffer, neither touched by later pushes', () => {
    const store = new TextStore();
    store.push('one');
    const small = store.take();
    const line = 'x'.repeat(1000);
    for (let i = 0; i < 100; i++) store.push(`${i}:${line}`);
    const large = store.take();
    store.push('after');
    store.push('y'.repeat(200_000));
    expect(texts(small)).toEqual(['one']);
    expect(texts(large)).toHaveLength(100);
    expect(texts(large)[99]).toBe(`99:${line}`);
    expect(texts(store.take())).toEqual(['after', 'y'.repeat(200_000)]);
  });

  it('drops the first entries of a batch (a sender reported them delivered)', () => {
    const store = new TextStore();
    for (const e of ['a', 'bb', '\u00e9\u00e9', 'dddd']) store.push(e);
    const batch = store.take();
    const rest = store.drop(batch, 2);
    expect(store.count(rest)).toBe(2);
    expect(texts(rest)).toEqual(['\u00e9\u00e9', 'dddd']);
    expect(rest.join(0x5b, 0x2c, 0x5d).toString()).toBe('[\u00e9\u00e9,dddd]');
    expect(store.count(store.drop(batch, 4))).toBe(0);
  });

  it('writes values as JSON through its writer; a writer that throws leaves nothing half-written', () => {
    const store = new TextStore<Record<string, unknown>>((out, entry) => {
      out.object(entry);
    });
    store.push({ a: 'caf\u00e9' });
    // Throws part way (BigInt is not JSON): the bytes before it in this entry must not stay behind.
    expect(() => store.push({ b: 'written first', c: 1n })).toThrow(TypeError);
    store.push({ d: [1, null] });
    expect(texts(store.take())).toEqual(['{"a":"caf\u00e9"}', '{"d":[1,null]}']);
  });
});

