/**
 * JSON written as bytes (src/plugins/lib/json-bytes.ts, http-logger's
 * entries) must be Buffer.from(JSON.stringify(v)) byte for byte: every
 * escape JSON.stringify makes, UTF-8 for what it does not escape, lone
 * surrogates as escapes, its member order and its omissions. Each case is
 * written into a buffer that starts tiny, so growth is on the way.
 */
import { describe, expect, it } from 'vitest';
import { JsonBuffer } from '../../../src/plugins/lib/json-bytes.js';

function bytesOf(write: (out: JsonBuffer) => void): Buffer {
  const out = new JsonBuffer(4);
  write(out);
  return Buffer.from(out.bytes.subarray(0, out.at));
}

const same = (v: unknown): void => {
  expect(bytesOf((out) => out.value(v)).toString('hex'), JSON.stringify(v)).toBe(Buffer.from(JSON.stringify(v)).toString('hex'));
};

/** Every code unit below 0x100, short and past the native-write length, alone and among others. */
const awkwardStrings = (): string[] => {
  const out: string[] = [];
  for (let c = 0; c < 0x100; c++) {
    const ch = String.fromCharCode(c);
    out.push(ch, `a${ch}b`, `${'x'.repeat(60)}${ch}`);
  }
  out.push(
    '',
    'caf\u00e9 \u20ac \u{1f600}', // 2-, 3- and 4-byte UTF-8
    '\ud800', // lone high surrogate
    '\udc00', // lone low surrogate
    'a\ud83dz', // high surrogate followed by a non-surrogate
    '\ude00\ud83d', // the halves in the wrong order
    '\ud83d\ude00\ud83d', // a pair, then a lone half at the end
    `${'y'.repeat(50)}\ud800`, // lone surrogate in a long string
    `${'y'.repeat(50)}\u{1f600}"\\`, // pair and escapes in a long string
    '\u2028\u2029\ufeff\uffff', // not escaped by JSON.stringify
  );
  return out;
};

describe('JsonBuffer', () => {
  it('strings: escapes, UTF-8 and lone surrogates as JSON.stringify writes them', () => {
    for (const s of awkwardStrings()) same(s);
  });

  it('numbers, literals, arrays and nesting', () => {
    for (const v of [0, -0, 1, -1, 0.1, 1e21, 1e-7, 2 ** 53, -(2 ** 60), NaN, Infinity, -Infinity, true, false, null]) same(v);
    same([]);
    same({});
    same([1, 'a', [2, [3, {}]], { b: [null] }]);
    // Undefined, functions and symbols: null in an array, left out of an object.
    same([undefined, () => 1, Symbol('s'), 4]);
    same({ a: undefined, b: () => 1, c: Symbol('s'), d: 4 });
  });

  it("objects in JSON.stringify's member order, with keys that need escapes", () => {
    same({ b: 1, 2: 'two', a: 2, 1: 'one', '-1': 'neg', '01': 'lead', 'k"\\\n': 'v', '\u00e9': '\ud800' });
    const noProto = Object.create(null) as Record<string, unknown>;
    noProto.z = 1;
    noProto.y = { x: [] };
    same(noProto);
    const own: Record<string, unknown> = {};
    Object.defineProperty(own, '__proto__', { value: 'member', enumerable: true, writable: true, configurable: true });
    Object.defineProperty(own, 'hidden', { value: 'not enumerable', enumerable: false });
    same(own);
    // Inherited enumerable members are not JSON's.
    same(Object.assign(Object.create({ inherited: 1 }) as object, { mine: 2 }));
  });

  it('values with toJSON, and other objects that are not plain, are left to JSON.stringify', () => {
    same({ when: new Date(0), buf: Buffer.from('ab'), custom: { toJSON: () => ({ replaced: true }) }, gone: { toJSON: () => undefined } });
    same([new Date(0), { toJSON: () => undefined }]);
    same({ map: new Map([[1, 2]]), boxed: new String('s'), num: new Number(3) });
  });

  it('members() continues an object that already has members', () => {
    const text = bytesOf((out) => {
      out.byte(0x7b);
      const comma = out.members({ a: 1, skip: undefined }, false);
      expect(comma).toBe(true);
      expect(out.members({ b: 2 }, comma)).toBe(true);
      expect(out.members({ none: undefined }, false)).toBe(false);
      out.byte(0x7d);
    }).toString();
    expect(text).toBe('{"a":1,"b":2}');
  });

  it('uint() writes what String(n) writes, and refuses what is not a safe non-negative integer', () => {
    const values = [0, 7, 9, 10, 99, 100, 101, 999_999, 1_000_000, 1796627383005, 2 ** 53 - 1];
    for (let i = 1; i < 2 ** 53; i = i * 3 + 1) values.push(i);
    for (const n of values) expect(bytesOf((out) => out.uint(n)).toString('latin1'), String(n)).toBe(String(n));
    for (const bad of [-1, 1.5, NaN, 2 ** 53]) expect(() => bytesOf((out) => out.uint(bad))).toThrow(RangeError);
  });

  it('lowerToken() writes JSON.stringify(name.toLowerCase()), tokens or not', () => {
    for (const name of ['Content-Type', 'X-UPPER', 'already-lower', '__Proto__', 'A^B~C`D|E', 'caf\u00c9', 'sp ace', 'q"uote', 'back\\slash', 'tab\tx', '']) {
      expect(bytesOf((out) => out.lowerToken(name)).toString(), name).toBe(JSON.stringify(name.toLowerCase()));
    }
  });

  it('a cycle throws instead of recursing without end', () => {
    const a: Record<string, unknown> = {};
    a.self = a;
    expect(() => bytesOf((out) => out.value(a))).toThrow(RangeError);
  });
});
