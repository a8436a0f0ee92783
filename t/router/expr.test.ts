import { describe, expect, it } from 'vitest';
import { compileExpr, luaToNumber, type ExprVars } from '../../src/core/match/expr.js';

function vars(map: Record<string, unknown>): ExprVars {
  return { get: (name) => map[name] };
}

const ok = (rule: unknown, v: Record<string, unknown>) => compileExpr(rule)(vars(v));

describe('compileExpr: operators', () => {
  it('== and ~= compare strings exactly', () => {
    expect(ok([['arg_k', '==', 'v']], { arg_k: 'v' })).toBe(true);
    expect(ok([['arg_k', '==', 'v']], { arg_k: 'V' })).toBe(false);
    expect(ok([['arg_k', '==', 'v']], {})).toBe(false);
    expect(ok([['arg_k', '~=', 'v']], { arg_k: 'w' })).toBe(true);
    expect(ok([['arg_k', '~=', 'v']], {})).toBe(true);
    expect(ok([['arg_k', '~=', 'v']], { arg_k: 'v' })).toBe(false);
  });

  it('== against a number converts the variable like tonumber()', () => {
    expect(ok([['arg_n', '==', 10]], { arg_n: '10' })).toBe(true);
    expect(ok([['arg_n', '==', 10]], { arg_n: '10.0' })).toBe(true);
    expect(ok([['arg_n', '==', 16]], { arg_n: '0x10' })).toBe(true);
    expect(ok([['arg_n', '==', 10]], { arg_n: 'ten' })).toBe(false);
    // String "10" vs string "10.0" is not equal: no conversion without a number on the right.
    expect(ok([['arg_n', '==', '10']], { arg_n: '10.0' })).toBe(false);
    expect(ok([['arg_n', '~=', 10]], { arg_n: 'ten' })).toBe(true);
    expect(ok([['arg_n', '~=', 10]], { arg_n: '10' })).toBe(false);
  });

  it('ordering operators are numeric and false on non-numbers', () => {
    expect(ok([['arg_n', '>', 5]], { arg_n: '6' })).toBe(true);
    expect(ok([['arg_n', '>', 5]], { arg_n: '5' })).toBe(false);
    expect(ok([['arg_n', '>=', 5]], { arg_n: '5' })).toBe(true);
    expect(ok([['arg_n', '<', '5']], { arg_n: '4.5' })).toBe(true);
    expect(ok([['arg_n', '<=', 5]], { arg_n: '5' })).toBe(true);
    expect(ok([['arg_n', '<', 5]], { arg_n: 'abc' })).toBe(false);
    expect(ok([['arg_n', '>', 5]], {})).toBe(false);
    // "10" > "9" numerically, although not as strings.
    expect(ok([['arg_n', '>', '9']], { arg_n: '10' })).toBe(true);
  });

  it('~~ is a regex search and ~* its case-insensitive form', () => {
    expect(ok([['http_ua', '~~', '^curl/']], { http_ua: 'curl/8.0' })).toBe(true);
    expect(ok([['http_ua', '~~', '^curl/']], { http_ua: 'Curl/8.0' })).toBe(false);
    expect(ok([['http_ua', '~*', '^curl/']], { http_ua: 'Curl/8.0' })).toBe(true);
    expect(ok([['http_ua', '~~', 'bot']], { http_ua: 'googlebot 2' })).toBe(true);
    expect(ok([['http_ua', '~~', '.*']], {})).toBe(false);
    // PCRE-valid escapes that a `u` regex would refuse still work.
    expect(ok([['arg_v', '~~', '^[a-z]\\-\\d$']], { arg_v: 'a-1' })).toBe(true);
  });

  it('in tests membership, has looks inside a list-valued variable', () => {
    expect(ok([['arg_c', 'in', ['a', 'b']]], { arg_c: 'b' })).toBe(true);
    expect(ok([['arg_c', 'in', ['a', 'b']]], { arg_c: 'c' })).toBe(false);
    expect(ok([['arg_c', 'in', ['1']]], { arg_c: '1' })).toBe(true);
    expect(ok([['arg_c', 'in', [1]]], { arg_c: '1' })).toBe(false);
    expect(ok([['tags', 'has', 'x']], { tags: ['w', 'x'] })).toBe(true);
    expect(ok([['tags', 'has', 'x']], { tags: ['w'] })).toBe(false);
    expect(ok([['tags', 'has', 'x']], { tags: 'x' })).toBe(false);
  });

  it('ipmatch checks the variable against addresses and CIDRs', () => {
    const rule = [['remote_addr', 'ipmatch', ['127.0.0.0/8', '::1']]];
    expect(ok(rule, { remote_addr: '127.9.9.9' })).toBe(true);
    expect(ok(rule, { remote_addr: '::1' })).toBe(true);
    expect(ok(rule, { remote_addr: '10.0.0.1' })).toBe(false);
    expect(ok(rule, {})).toBe(false);
    expect(ok([['remote_addr', 'ipmatch', '10.0.0.1']], { remote_addr: '10.0.0.1' })).toBe(true);
  });

  it('operators are case-insensitive', () => {
    expect(ok([['arg_c', 'IN', ['a']]], { arg_c: 'a' })).toBe(true);
    expect(ok([['remote_addr', 'IPMATCH', '1.2.3.4']], { remote_addr: '1.2.3.4' })).toBe(true);
  });

  it('"!" negates a single expression', () => {
    expect(ok([['arg_k', '!', '==', 'v']], { arg_k: 'v' })).toBe(false);
    expect(ok([['arg_k', '!', '==', 'v']], { arg_k: 'w' })).toBe(true);
    expect(ok([['arg_c', '!', 'in', ['a']]], { arg_c: 'b' })).toBe(true);
  });

  it('a two-element expression means ==', () => {
    expect(ok([['arg_k', 'v']], { arg_k: 'v' })).toBe(true);
    expect(ok([['arg_k', 'v']], { arg_k: 'x' })).toBe(false);
  });

  it('JSON null as the value means "no value"', () => {
    expect(ok([['arg_k', '==', null]], {})).toBe(true);
    expect(ok([['arg_k', '==', null]], { arg_k: '' })).toBe(false);
    expect(ok([['arg_k', '~=', null]], { arg_k: 'x' })).toBe(true);
  });
});

describe('compileExpr: logic', () => {
  it('an empty rule always matches', () => {
    expect(ok([], {})).toBe(true);
  });

  it('a plain list is an AND', () => {
    const rule = [
      ['arg_a', '==', '1'],
      ['arg_b', '==', '2'],
    ];
    expect(ok(rule, { arg_a: '1', arg_b: '2' })).toBe(true);
    expect(ok(rule, { arg_a: '1', arg_b: '3' })).toBe(false);
  });

  it('OR, AND, !AND, !OR and nesting', () => {
    const or = ['OR', ['arg_a', '==', '1'], ['arg_b', '==', '2']];
    expect(ok(or, { arg_b: '2' })).toBe(true);
    expect(ok(or, { arg_a: '0', arg_b: '0' })).toBe(false);
    const and = ['and', ['arg_a', '==', '1'], ['arg_b', '==', '2']];
    expect(ok(and, { arg_a: '1', arg_b: '2' })).toBe(true);
    expect(ok(and, { arg_a: '1' })).toBe(false);
    const nand = ['!AND', ['arg_a', '==', '1'], ['arg_b', '==', '2']];
    expect(ok(nand, { arg_a: '1', arg_b: '2' })).toBe(false);
    expect(ok(nand, { arg_a: '1' })).toBe(true);
    const nor = ['!OR', ['arg_a', '==', '1'], ['arg_b', '==', '2']];
    expect(ok(nor, {})).toBe(true);
    expect(ok(nor, { arg_b: '2' })).toBe(false);
    const nested = [
      ['arg_x', '==', 'y'],
      ['OR', ['arg_a', '==', '1'], ['AND', ['arg_b', '==', '2'], ['arg_c', '==', '3']]],
    ];
    expect(ok(nested, { arg_x: 'y', arg_b: '2', arg_c: '3' })).toBe(true);
    expect(ok(nested, { arg_x: 'y', arg_b: '2' })).toBe(false);
    expect(ok(nested, { arg_x: 'y', arg_a: '1' })).toBe(true);
    expect(ok(nested, { arg_a: '1' })).toBe(false);
  });

  it('reads each variable only as far as evaluation needs (short-circuit)', () => {
    const read: string[] = [];
    const f = compileExpr(['OR', ['a', '==', '1'], ['b', '==', '2']]);
    f({ get: (n) => (read.push(n), n === 'a' ? '1' : undefined) });
    expect(read).toEqual(['a']);
  });
});

describe('compileExpr: errors carry lua-resty-expr messages', () => {
  it.each([
    [[['arg_a', '=', '1']], "invalid operator '='"],
    [[['arg_a', '!=', '1']], "invalid operator '!='"],
    [['arg_a', '==', '1'], 'rule should be wrapped inside brackets'],
    [['OR', ['arg_a', '==', '1']], 'rule too short'],
    [[['arg_a', 'not', '==', '1']], "bad 'not' expression"],
    [[[]], 'rule too short'],
    [[['arg_a']], 'invalid expression'],
    [[['remote_addr', 'ipmatch', []]], 'invalid ip address'],
    [[['remote_addr', 'ipmatch', ['300.1.1.1']]], 'invalid ip address: 300.1.1.1'],
    [[['arg_a', '~~', '(unclosed']], "invalid regex '(unclosed'"],
    [[['arg_a', '~~', 5]], "invalid regex '5'"],
    [null, 'missing argument rule'],
    ['x', 'rule should be wrapped inside brackets'],
  ])('%j → %s', (rule, msg) => {
    expect(() => compileExpr(rule)).toThrow(msg);
  });
});

describe('luaToNumber', () => {
  it('follows tonumber()', () => {
    expect(luaToNumber(' 12 ')).toBe(12);
    expect(luaToNumber('1e3')).toBe(1000);
    expect(luaToNumber('-0x10')).toBe(-16);
    expect(luaToNumber('.5')).toBe(0.5);
    expect(luaToNumber('')).toBeUndefined();
    expect(luaToNumber('Infinity')).toBeUndefined();
    expect(luaToNumber('0b11')).toBeUndefined();
    expect(luaToNumber('12abc')).toBeUndefined();
    expect(luaToNumber(undefined)).toBeUndefined();
  });
});
